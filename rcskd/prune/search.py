"""Ratio search in one code path: the DDPG agent and two baselines with the same budget.

- `ddpg`: stable-baselines3 DDPG on `PruningEnv` (as the reference code), random warm-up
  episodes, then Gaussian exploration noise that decays every episode.
- `random`: the same env and clipping, uniformly random actions, same number of episodes.
- `uniform`: one ratio for every unit, solved exactly for the budget; one evaluation.
Each returns the best episode's unit ratios and every episode's reward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from stable_baselines3.common.noise import ActionNoise

from rcskd.config import AgentConfig
from rcskd.prune.env import PruningEnv, Unit


@dataclass
class SearchResult:
    """The outcome of one search method."""

    method: str
    ratios: dict[str, float]  # per unit, of the best episode
    score: float
    best_episode: int  # 1-based
    history: list[dict] = field(default_factory=list)  # method, episode, reward
    seconds: float = 0.0
    episodes: list[dict] = field(default_factory=list)  # every episode's ratios and reward


class DecayingGaussianNoise(ActionNoise):
    """N(0, sigma) exploration; sigma shrinks by `decay` after each post-warm-up episode."""

    def __init__(self, sigma: float, decay: float, warmup_episodes: int, seed: int) -> None:
        super().__init__()
        self.sigma, self.decay, self.warmup = sigma, decay, warmup_episodes
        self.episode = 0
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        return self._rng.normal(0.0, self.sigma, size=1).astype(np.float32)

    def reset(self) -> None:
        self.episode += 1
        if self.episode > self.warmup:
            self.sigma *= self.decay


def _result(method: str, env: PruningEnv, start: float) -> SearchResult:
    rewards = [e["reward"] for e in env.episodes]
    best = int(np.argmax(rewards))
    history = [
        {"method": method, "episode": i + 1, "reward": r, "best_so_far": max(rewards[: i + 1])}
        for i, r in enumerate(rewards)
    ]
    return SearchResult(
        method, env.episodes[best]["ratios"], rewards[best], best + 1, history,
        time.perf_counter() - start, list(env.episodes),
    )  # fmt: skip


def search_ddpg(env: PruningEnv, cfg: AgentConfig, seed: int) -> SearchResult:
    """DDPG over `cfg.episodes` episodes (the first `warmup_episodes` with random actions)."""
    from stable_baselines3 import DDPG

    start = time.perf_counter()
    env.episodes.clear()
    steps = len(env.units)
    agent = DDPG(
        "MlpPolicy",
        env,
        learning_rate=cfg.learning_rate,
        buffer_size=max(cfg.episodes * steps, 100),
        learning_starts=cfg.warmup_episodes * steps,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=1.0,  # the only reward is the episode's last
        train_freq=(1, "episode"),
        gradient_steps=-1,
        action_noise=DecayingGaussianNoise(
            cfg.noise_sigma, cfg.noise_decay, cfg.warmup_episodes, seed
        ),
        policy_kwargs={"net_arch": [cfg.hidden, cfg.hidden]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    agent.learn(total_timesteps=cfg.episodes * steps)
    return _result("ddpg", env, start)


def search_random(env: PruningEnv, episodes: int, seed: int) -> SearchResult:
    """Uniformly random actions through the same env (same clipping), `episodes` times."""
    start = time.perf_counter()
    env.episodes.clear()
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        env.reset(seed=int(rng.integers(2**31)))
        done = False
        while not done:
            _, _, done, _, _ = env.step(rng.uniform(0.0, 1.0, size=1))
    return _result("random", env, start)


def search_uniform(env: PruningEnv) -> SearchResult:
    """The single ratio that meets the budget in every unit; scored once."""
    start = time.perf_counter()
    env.episodes.clear()
    units: list[Unit] = env.units
    f = lambda r: sum(u.removed(r, env.resource) for u in units)  # noqa: E731
    lo, hi = 0.0, env.max_ratio
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if f(mid) >= env.need else (mid, hi)
    ratios = {u.name: hi for u in units}
    env.episodes.append({"ratios": ratios, "reward": float(env.score(dict(ratios)))})
    return _result("uniform", env, start)
