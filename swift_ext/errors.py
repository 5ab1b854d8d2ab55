"""Exception tree of swift-ext. The CLI turns every SwiftExtError into one line on stderr and exit 1."""


class SwiftExtError(Exception):
    """Base class of every error swift-ext raises on purpose."""


class PluginError(SwiftExtError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicateNameError(PluginError):
    """Two plugins (or a plugin and ms-swift) registered the same name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} name {name!r} is registered twice: by {first} and by {second}. "
            f"Rename one of them (names must be unique across swift-ext plugins and ms-swift's built-ins)."
        )


class UnknownNameError(SwiftExtError, KeyError):
    """A name was asked for that no plugin registered."""

    def __init__(self, kind: str, name: str, known):
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        near = difflib.get_close_matches(str(name), self.known, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
        super().__init__(f"unknown {kind} {name!r}; {hint}known: {', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ParamError(SwiftExtError, ValueError):
    """A reward/schedule parameter is unknown or has a bad value."""


class ConfigError(SwiftExtError, ValueError):
    """Inconsistent settings (CHORD, launch plans, ...)."""


class BridgeError(SwiftExtError):
    """ms-swift is missing or does not look like a supported version."""
