"""Gradient attacks on observations (FGSM, PGD, TargetedPGD) for
``state_perturbation_v0(attack=...)``.

Both need a differentiable victim policy written in torch, which is imported only when an
attack is constructed (``import adv_wrappers`` stays torch-free). The victim is a callable
mapping a float tensor ``[batch, *obs_shape]`` to either action logits ``[batch, n]``
(``kind="discrete"``: the attack maximizes the cross-entropy to the action the victim takes
on the clean observation, i.e. tries to change its greedy action) or action means
``[batch, d]`` (``kind="continuous"``: the attack maximizes the squared distance to the clean
action). Give one victim for every attacked agent or a dict agent ID -> victim.
:class:`TargetedPGD` (Lin et al. 2020) instead pulls the victim toward an action that an
adversarial policy picks. A recurrent victim loaded from a checkpoint gives its logits at its
current state with ``CheckpointPolicy.torch_logits``.

The result always lies in the admissible set of :class:`StatePerturbationWrapper`: the
``norm`` ball of radius epsilon around the true observation, intersected with the
observation space's bounds.

Example:
    >>> import torch
    >>> from adv_envs import echo_v0
    >>> from adv_wrappers import state_perturbation_v0
    >>> from adv_wrappers.attacks import FGSM
    >>> _ = torch.manual_seed(0)
    >>> victim = torch.nn.Linear(3, 5)
    >>> env = state_perturbation_v0(echo_v0.parallel_env(), 0.1, attack=FGSM(victim))
    >>> obs, infos = env.reset(seed=0)
    >>> [round(n, 3) for n in infos["agent_0"]["state_perturbation"]["perturbation_norm"].values()]
    [0.1, 0.1, 0.1]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from adv_wrappers.errors import InvalidArgumentError, UnknownAgentError

KINDS = ("discrete", "continuous")


def _import_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("gradient attacks need torch: pip install 'adv-wrappers[torch]'") from e
    return torch


def _check_policies(policies: Any, what: str, on: str) -> None:
    """A callable or a dict agent -> callable; else ``InvalidArgumentError`` naming the rest."""
    if isinstance(policies, Mapping):
        bad = [a for a, v in policies.items() if not callable(v)]
    else:
        bad = [] if callable(policies) else [what]
    if bad:
        raise InvalidArgumentError(f"{what} policies must be callables{on}; not callable: {bad}")


def _policy_for(policies: Any, agent: str, what: str) -> Callable:
    """The policy of ``agent`` (the one callable, or its entry in the dict)."""
    if isinstance(policies, Mapping):
        if agent not in policies:
            raise UnknownAgentError(
                f"no {what} policy for attacked agent {agent!r}; {what}s given for {list(policies)}"
            )
        return policies[agent]
    return policies


def _check_steps(steps: Any, step_size: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InvalidArgumentError(f"steps={steps!r} is not allowed: it must be an int >= 1")
    if step_size is not None and (not np.isfinite(step_size) or step_size <= 0):
        raise InvalidArgumentError(
            f"step_size={step_size!r} is not allowed: it must be finite and > 0"
        )


class _GradientAttack:
    def __init__(self, victim: Callable | Mapping[str, Callable], kind: str):
        self.torch = _import_torch()
        if kind not in KINDS:
            raise InvalidArgumentError(f"kind={kind!r} is not allowed; use one of {KINDS}")
        _check_policies(victim, "victim", " on tensors")
        self.victim = victim
        self.kind = kind

    def _victim_for(self, agent: str) -> Callable:
        return _policy_for(self.victim, agent, "victim")

    def _loss_and_grad(self, agent: str, clean: Any, x: np.ndarray) -> tuple[float, np.ndarray]:
        torch = self.torch
        policy = self._victim_for(agent)
        xt = torch.as_tensor(x[None], dtype=torch.float32).requires_grad_(True)
        out = policy(xt)
        if self.kind == "discrete":
            loss = torch.nn.functional.cross_entropy(out, clean)
        else:
            loss = ((out - clean) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, xt)
        return float(loss.detach()), grad[0].detach().cpu().numpy().astype(np.float64)

    def _clean_target(self, agent: str, obs: np.ndarray) -> Any:
        torch = self.torch
        with torch.no_grad():
            out = self._victim_for(agent)(torch.as_tensor(obs[None], dtype=torch.float32))
        return out.argmax(dim=-1) if self.kind == "discrete" else out.detach()

    @staticmethod
    def _step(grad: np.ndarray, size: float, norm: str) -> np.ndarray:
        if norm == "linf":
            return size * np.sign(grad)
        n = np.linalg.norm(grad)
        return size * grad / n if n > 0 else np.zeros_like(grad)

    @staticmethod
    def _project(
        obs: np.ndarray, x: np.ndarray, epsilon: float, norm: str, low, high
    ) -> np.ndarray:
        from adv_wrappers.state_perturbation import project

        delta = project((x - obs).reshape(-1), epsilon, norm).reshape(obs.shape)
        return np.clip(obs + delta, low, high)


class FGSM(_GradientAttack):
    """Fast Gradient Sign Method (Goodfellow et al., 2015): one step of size epsilon.

    l-inf: ``o' = clip(o + epsilon * sign(g))``; l2: ``o' = clip(o + epsilon * g / ||g||)``,
    with ``g`` the gradient of the attack loss at the true observation.

    Args:
        victim: a torch callable (or dict agent -> callable), see the module docstring.
        kind: ``"discrete"`` (logits) or ``"continuous"`` (action means).

    Raises:
        InvalidArgumentError: unknown ``kind``; a victim that is not callable.
        UnknownAgentError: (at the step) no victim in the dict for an attacked agent.
        ImportError: torch is not installed.
    """

    def __init__(self, victim: Callable | Mapping[str, Callable], *, kind: str = "discrete"):
        super().__init__(victim, kind)

    def perturb(self, agent, obs, epsilon, norm, low, high, rng) -> np.ndarray:
        obs64 = np.asarray(obs, np.float64)
        _, grad = self._loss_and_grad(agent, self._clean_target(agent, obs64), obs64)
        return self._project(
            obs64, obs64 + self._step(grad, epsilon, norm), epsilon, norm, low, high
        )


class PGD(_GradientAttack):
    """Projected Gradient Descent (Madry et al., 2018): ``steps`` projected gradient steps.

    Starts at the true observation or, with ``random_start``, at a uniform point of the
    l-inf ball (l2: a uniform direction at uniform radius) drawn with the wrapper's RNG;
    each step moves by ``step_size`` along the sign (l-inf) or the normalized gradient (l2)
    and projects back onto the ball and the bounds. Returns the iterate with the highest
    loss (so PGD is never worse than its start).

    Args:
        victim: a torch callable (or dict agent -> callable), see the module docstring.
        steps: number of gradient steps, an int >= 1 (default 10).
        step_size: step length; ``None``: ``2.5 * epsilon / steps`` (Madry et al.).
        random_start: start from a random point of the ball (default True).
        kind: ``"discrete"`` or ``"continuous"``.

    Raises:
        InvalidArgumentError: steps not an int >= 1; step_size not finite and > 0; bad kind
            or victim.
        ImportError: torch is not installed.
    """

    def __init__(
        self,
        victim: Callable | Mapping[str, Callable],
        *,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        kind: str = "discrete",
    ):
        super().__init__(victim, kind)
        _check_steps(steps, step_size)
        self.steps = int(steps)
        self.step_size = step_size
        self.random_start = bool(random_start)

    def perturb(self, agent, obs, epsilon, norm, low, high, rng) -> np.ndarray:
        obs64 = np.asarray(obs, np.float64)
        size = self.step_size if self.step_size is not None else 2.5 * epsilon / self.steps
        clean = self._clean_target(agent, obs64)
        x = obs64.copy()
        if self.random_start and epsilon > 0:
            if norm == "linf":
                start = rng.uniform(-epsilon, epsilon, obs64.shape)
            else:
                direction = rng.normal(size=obs64.size)
                direction /= max(np.linalg.norm(direction), 1e-12)
                start = (direction * epsilon * rng.random() ** (1.0 / obs64.size)).reshape(
                    obs64.shape
                )
            x = self._project(obs64, obs64 + start, epsilon, norm, low, high)
        best_x, best_loss = x, -np.inf
        for _ in range(self.steps):
            loss, grad = self._loss_and_grad(agent, clean, x)
            if loss > best_loss:
                best_x, best_loss = x, loss
            x = self._project(obs64, x + self._step(grad, size, norm), epsilon, norm, low, high)
        loss, _ = self._loss_and_grad(agent, clean, x)
        return x if loss > best_loss else best_x


class TargetedPGD(_GradientAttack):
    """The observation attack of Lin et al. (2020), "On the Robustness of Cooperative
    Multi-Agent Reinforcement Learning": a targeted iterative gradient attack.

    Lin et al. attack one agent of a cooperative team in two stages: an *adversarial policy*,
    trained to minimize the team's return, picks the action the victim should take, and an
    adversarial example on the victim's observation makes the victim take it. This is not
    untargeted FGSM (which only pushes the victim away from its own greedy action): the loss
    here is the cross-entropy between the victim's action distribution on the perturbed
    observation and the target action, *minimized* by ``steps`` signed (l-inf) or normalized
    (l2) gradient steps of ``step_size``, each projected back onto the ball and the bounds.
    The iterate with the lowest loss is returned. Li et al. (ICLR 2024) evaluate their
    defenses with this attack at epsilon in {0.2, 0.5, 1.0}, the target being a trained
    adversary of the attacked agent; their public code takes 5 signed steps of epsilon / 3
    (the defaults here) but matches the victim's logits to the adversary's by squared error,
    where this class follows Lin et al.'s targeted formulation (cross-entropy to the
    adversary's action, greedy unless ``target`` samples).

    Args:
        victim: a torch callable (or dict agent -> callable) mapping ``[batch, *obs_shape]``
            to action logits (Discrete actions).
        target: a callable (or dict agent -> callable) on the *true* observation returning
            the target action index (e.g. a trained adversary loaded with ``load_policy``).
        steps: gradient steps, an int >= 1 (default 5).
        step_size: step length; ``None``: ``epsilon / 3``.

    Raises:
        InvalidArgumentError: bad steps or step_size; a victim or target that is not
            callable.
        UnknownAgentError: (at the step) no victim or target for an attacked agent.
        ImportError: torch is not installed.
    """

    def __init__(
        self,
        victim: Callable | Mapping[str, Callable],
        target: Callable | Mapping[str, Callable],
        *,
        steps: int = 5,
        step_size: float | None = None,
    ):
        super().__init__(victim, "discrete")
        _check_policies(target, "target", "")
        _check_steps(steps, step_size)
        self.target = target
        self.steps = int(steps)
        self.step_size = step_size

    def perturb(self, agent, obs, epsilon, norm, low, high, rng) -> np.ndarray:
        torch = self.torch
        obs64 = np.asarray(obs, np.float64)
        action = int(_policy_for(self.target, agent, "target")(np.asarray(obs, dtype=np.float32)))
        target = torch.as_tensor([action])
        size = self.step_size if self.step_size is not None else epsilon / 3.0
        x, best_x, best_loss = obs64.copy(), obs64.copy(), np.inf
        for _ in range(self.steps):
            loss, grad = self._loss_and_grad(agent, target, x)  # cross-entropy to the target
            if loss < best_loss:
                best_x, best_loss = x, loss
            x = self._project(obs64, x - self._step(grad, size, norm), epsilon, norm, low, high)
        loss, _ = self._loss_and_grad(agent, target, x)
        return x if loss < best_loss else best_x
