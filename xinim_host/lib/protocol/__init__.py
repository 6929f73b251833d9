"""The wire format of every lattice IPC message; one package used by both sides.

``wire`` has the header, the field kinds and the codec; ``vfs``, ``pm``, ``mm`` and ``net``
declare each server's requests and replies.  Importing this package registers
them all, so ``decode`` knows every type.
"""
from .wire import *  # noqa: F401,F403
from .vfs import *  # noqa: F401,F403
from .pm import *  # noqa: F401,F403
from .mm import *  # noqa: F401,F403
from .net import *  # noqa: F401,F403
