"""What this run asked ms-swift for, read once per process.

ms-swift imports ``--external_plugins`` files from ``BaseArguments.__post_init__`` and hands them nothing, so
the run's arguments are found the one way that sees every source ms-swift reads (command line, ``--config``
YAML, in-process ``rlhf_main(RLHFArguments(...))``): the arguments object whose ``__post_init__`` is importing
the plugin, found on the call stack. Without one (the plugin imported by hand) the command line is read,
and ``SWIFT_EXT_REWARDS`` / ``SWIFT_EXT_CALLBACKS`` add names in every case (for launchers that build argv
elsewhere).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

REWARDS_ENV = "SWIFT_EXT_REWARDS"
CALLBACKS_ENV = "SWIFT_EXT_CALLBACKS"
#: the ``--chord_mu_*`` arguments a CHORD run needs (ms-swift has no default for them)
CHORD_MU_ARGS = ("chord_mu_warmup_steps", "chord_mu_decay_steps", "chord_mu_peak", "chord_mu_valley")
#: attributes of ms-swift's arguments object this package reads
_FIELDS = ("reward_funcs", "callbacks", "dataset", "chord_sft_dataset", "chord_sft_per_device_train_batch_size",
           *CHORD_MU_ARGS, "multi_turn_scheduler", "max_turns")


@dataclass(frozen=True)
class RunContext:
    """The run's reward and callback names, datasets and CHORD settings, and where they were read."""

    source: str = "none"  # "arguments" (ms-swift's arguments object), "argv" or "none"
    reward_funcs: Tuple[str, ...] = ()
    callbacks: Tuple[str, ...] = ()
    dataset: Tuple[str, ...] = ()
    chord_sft_dataset: Tuple[str, ...] = ()
    chord_sft_batch_size: Optional[Any] = None
    chord_mu: Dict[str, Any] = field(default_factory=dict)
    #: ``--multi_turn_scheduler`` (a string; None when not set) and ``--max_turns``
    multi_turn_scheduler: Optional[str] = None
    max_turns: Optional[Any] = None
    #: the reward names that came from ``SWIFT_EXT_REWARDS`` (swift-ext's own variable: checked by name)
    env_rewards: Tuple[str, ...] = ()
    args: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_args(cls, args: Any) -> "RunContext":
        """From an ms-swift arguments object (or anything with the same attribute names)."""
        get = lambda name: getattr(args, name, None)  # noqa: E731
        return cls(source="arguments", reward_funcs=_strings(get("reward_funcs")), callbacks=_strings(get("callbacks")),
                   dataset=_strings(get("dataset")), chord_sft_dataset=_strings(get("chord_sft_dataset")),
                   chord_sft_batch_size=get("chord_sft_per_device_train_batch_size"),
                   chord_mu={a: get(a) for a in CHORD_MU_ARGS},
                   multi_turn_scheduler=get("multi_turn_scheduler") if isinstance(get("multi_turn_scheduler"), str)
                   else None, max_turns=get("max_turns"), args=args).with_env()

    @classmethod
    def from_argv(cls, argv: Optional[Sequence[str]] = None) -> "RunContext":
        """From a ``swift rlhf ...`` command line (default ``sys.argv[1:]``)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        values = {name: argv_values(f"--{name}", argv) for name in _FIELDS}
        first = lambda name: (values[name] or [None])[0]  # noqa: E731
        return cls(source="argv", reward_funcs=tuple(values["reward_funcs"]), callbacks=tuple(values["callbacks"]),
                   dataset=tuple(values["dataset"]), chord_sft_dataset=tuple(values["chord_sft_dataset"]),
                   chord_sft_batch_size=first("chord_sft_per_device_train_batch_size"),
                   chord_mu={a: first(a) for a in CHORD_MU_ARGS},
                   multi_turn_scheduler=first("multi_turn_scheduler"), max_turns=first("max_turns")).with_env()

    @classmethod
    def discover(cls, argv: Optional[Sequence[str]] = None) -> "RunContext":
        """The importing arguments object when there is one, else ``argv`` (default ``sys.argv[1:]``)."""
        args = _importing_arguments()
        return cls.from_args(args) if args is not None else cls.from_argv(argv)

    def with_env(self, env: Optional[Dict[str, str]] = None) -> "RunContext":
        env = os.environ if env is None else env
        env_rewards = tuple(env.get(REWARDS_ENV, "").split())
        return replace(self, env_rewards=env_rewards,
                       reward_funcs=tuple(dict.fromkeys(self.reward_funcs + env_rewards)),
                       callbacks=tuple(dict.fromkeys(self.callbacks + tuple(env.get(CALLBACKS_ENV, "").split()))))


def _strings(value: Any) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value if isinstance(v, str))


def _importing_arguments() -> Any:
    """The ms-swift arguments object on the call stack (the ``self`` of ``BaseArguments.__post_init__``)."""
    frame = sys._getframe(1)
    for _ in range(80):
        if frame is None:
            return None
        obj = frame.f_locals.get("self")
        if obj is not None and hasattr(obj, "output_dir") and any(hasattr(obj, f) for f in _FIELDS):
            return obj
        frame = frame.f_back
    return None


def argv_values(flag: str, argv: Sequence[str]) -> List[str]:
    """The values after ``flag`` (up to the next ``--option``), or of ``flag=a b``.

    >>> argv_values("--reward_funcs", ["--reward_funcs", "a", "b:x=1", "--beta", "0.1"])
    ['a', 'b:x=1']
    """
    out: List[str] = []
    for i, tok in enumerate(argv):
        if tok == flag:
            for value in argv[i + 1:]:
                if value.startswith("--"):
                    break
                out.append(value)
        elif tok.startswith(flag + "="):
            out += tok.split("=", 1)[1].split()
    return out
