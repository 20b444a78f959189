"""Ratio search in one code path: the DDPG agent and its baselines with the same budget.

- `ddpg`: stable-baselines3 DDPG on `PruningEnv` (the paper's agent), made to learn from a
  sparse end-of-episode reward as AMC does: Monte-Carlo targets (n-step returns over the whole
  episode, gamma 1), the reward centred on its moving average and scaled by its moving
  deviation, a slower actor than critic, `updates_per_episode` gradient steps per episode, and
  truncated-normal exploration on the action's [0, 1] scale, none during the random warm-up.
  (The reference code's agent never trained: `learn(100)` with 100 warm-up steps.)
- `cem`: the cross-entropy method over per-unit actions (no RL), same env and evaluations.
- `random`: the same env and clipping, uniformly random actions, same number of episodes.
- `uniform`: one ratio for every unit, solved exactly for the budget; one evaluation.
Each returns the best episode's unit ratios and every episode's (raw) reward.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
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
    """Truncated-normal exploration N(0, sigma) cut at 2 sigma, on the action's [0, 1] scale
    (stable-baselines3 adds noise to actions rescaled to [-1, 1], hence the factor 2); zero
    during the `warmup_episodes` random episodes, then shrinking by `decay` after each episode.
    """

    def __init__(self, sigma: float, decay: float, warmup_episodes: int, seed: int) -> None:
        super().__init__()
        self.sigma, self.decay, self.warmup = sigma, decay, warmup_episodes
        self.episode = 0
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        if self.episode < self.warmup or self.sigma == 0:
            return np.zeros(1, np.float32)
        draw = self._rng.normal(0.0, self.sigma)
        while abs(draw) > 2 * self.sigma:  # truncated normal: redraw the tails
            draw = self._rng.normal(0.0, self.sigma)
        return np.array([2.0 * draw], np.float32)  # [0, 1] scale -> the agent's [-1, 1] scale

    def reset(self) -> None:
        self.episode += 1
        if self.episode > self.warmup:
            self.sigma *= self.decay


class CentredReward(gym.Wrapper):
    """What the agent learns from: the episode's reward minus its moving average (AMC's
    baseline), divided by a moving deviation, so that small accuracy differences between good
    candidates are visible to the critic. The env keeps the raw rewards."""

    def __init__(self, env: gym.Env, decay: float) -> None:
        super().__init__(env)
        self.decay = decay
        self.mean: float | None = None
        self.var = 0.0

    def step(self, action):
        obs, reward, done, truncated, info = self.env.step(action)
        if done:
            if self.mean is None:
                self.mean = reward
            deviation = reward - self.mean
            self.var = self.decay * self.var + (1 - self.decay) * deviation**2
            scale = max(self.var**0.5, 1e-3)
            centred = deviation / scale
            self.mean = self.decay * self.mean + (1 - self.decay) * reward
            reward = float(np.clip(centred, -5.0, 5.0))
        return obs, reward, done, truncated, info


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


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch on `count` intra-op threads for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def agent_on_one_thread(env: PruningEnv) -> Iterator[None]:
    """The RL agent's own work on one torch thread, candidate scoring on all of them.

    The agent's networks are a few thousand weights: splitting their tiny matrix products over
    threads costs more than it saves (the default DDPG search ran 5x faster on one thread of
    two here, with the same result), while scoring a candidate runs a real network."""
    threads, score = torch.get_num_threads(), env.score

    def scored(ratios: dict[str, float]) -> float:
        with torch_threads(threads):
            return score(ratios)

    env.score = scored
    try:
        with torch_threads(1):
            yield
    finally:
        env.score = score


def search_ddpg(env: PruningEnv, cfg: AgentConfig, seed: int) -> SearchResult:
    """DDPG over `cfg.episodes` episodes (the first `warmup_episodes` with random actions)."""
    from stable_baselines3 import DDPG

    class TwoRateDDPG(DDPG):
        """DDPG whose actor and critic learn at their own rates."""

        def _update_learning_rate(self, optimizers) -> None:
            for optimizer, lr in ((self.actor.optimizer, cfg.actor_lr),
                                  (self.critic.optimizer, cfg.critic_lr)):  # fmt: skip
                for group in optimizer.param_groups:
                    group["lr"] = lr

    start = time.perf_counter()
    env.episodes.clear()
    steps = len(env.units)
    agent = TwoRateDDPG(
        "MlpPolicy",
        CentredReward(env, cfg.reward_decay),
        learning_rate=cfg.critic_lr,
        buffer_size=max(cfg.episodes * steps, 100),
        learning_starts=cfg.warmup_episodes * steps,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=1.0,
        n_steps=steps,  # Monte-Carlo targets: each step's return is its episode's reward
        train_freq=(1, "episode"),
        gradient_steps=cfg.updates_per_episode,
        action_noise=DecayingGaussianNoise(
            cfg.noise_sigma, cfg.noise_decay, cfg.warmup_episodes, seed
        ),
        policy_kwargs={"net_arch": [cfg.hidden, cfg.hidden]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    with agent_on_one_thread(env):
        agent.learn(total_timesteps=cfg.episodes * steps)
    return _result("ddpg", env, start)


def search_cem(env: PruningEnv, cfg: AgentConfig, seed: int) -> SearchResult:
    """The cross-entropy method: rounds of `cem_population` candidates drawn per unit from
    Gaussians over the action, refit to the best `cem_elite` share; `cfg.episodes` in all."""
    start = time.perf_counter()
    env.episodes.clear()
    rng = np.random.default_rng(seed)
    n = len(env.units)
    mean, std = np.full(n, 0.5), np.full(n, 0.3)
    done_episodes = 0
    while done_episodes < cfg.episodes:
        size = min(cfg.cem_population, cfg.episodes - done_episodes)
        actions = np.clip(rng.normal(mean, std, size=(size, n)), 0.0, 1.0)
        rewards = []
        for row in actions:
            env.reset(seed=int(rng.integers(2**31)))
            for a in row:
                env.step(np.array([a], np.float32))
            rewards.append(env.episodes[-1]["reward"])
        done_episodes += size
        elite = actions[np.argsort(rewards)[::-1][: max(1, round(cfg.cem_elite * size))]]
        mean = 0.3 * mean + 0.7 * elite.mean(0)  # smoothed refit, as in CEM for policy search
        std = np.maximum(0.3 * std + 0.7 * elite.std(0), 0.02)
    return _result("cem", env, start)


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
