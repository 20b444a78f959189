"""LPB-RL: block-wise structured pruning with ratios chosen by a reinforcement-learning agent."""
