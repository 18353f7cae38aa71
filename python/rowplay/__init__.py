"""rowplay for Python: read ``.rowpack`` libraries with numpy, drive a player.

    import rowplay

    with rowplay.open("patterns.rowpack") as lib:
        for row in lib["wave_17"]:      # the first row at once, from memory
            ...                         # numpy uint8 [leds, channels]

    rowplay.Client().play("wave_17")   # `rowplay ctl play wave_17`

- ``open(path)`` -> ``Library``: ``len(lib)``, ``lib.names``, ``name in lib``,
  ``lib[name]`` / ``lib[index]`` -> ``Array``, ``lib.verify()``; a context
  manager closing its one file descriptor.
- ``Array``: ``.shape``, ``.rows``, ``.leds``, ``.channels``, ``.fps``,
  ``.row(i)``, iteration over rows, ``.read()``.
- ``Client(socket=None)``: ``play``, ``next``, ``prev``, ``pause``,
  ``resume``, ``stop``, ``brightness``, ``status``, ``list``.

A bad file raises ``PackError`` (a ``ValueError``) whose message is the one
the ``rowplay`` binary prints for it; a player's ``error:`` reply raises
``ControlError``.
"""

from .control import Client, ControlError, default_socket_candidates
from .format import VERSION, FormatError
from .library import Array, Library, PackError, open

__version__ = "0.1.0"

__all__ = [
    "Array",
    "Client",
    "ControlError",
    "FormatError",
    "Library",
    "PackError",
    "VERSION",
    "default_socket_candidates",
    "open",
]
