"""Ctrl-C and SIGTERM for long commands: the first stops the load and lets the files be
finished (marked ``interrupted``); the second leaves at once, after the registered callbacks
(which write a valid manifest) ran."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable


class Interrupts:
    """First Ctrl-C/SIGTERM: stop the load, finish the files. Second: leave at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_second: list[Callable[[], None]] = []

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            for callback in self.on_second:
                callback()
            os._exit(128 + signum)
        self.signum = signum
        # A plain write: the signal can land while rich (or anything) is half imported, and a
        # handler that imports or formats could fail there.
        with contextlib.suppress(OSError):
            os.write(
                2,
                b"interrupted: stopping the load and writing results "
                b"(press Ctrl-C again to leave at once)\n",
            )

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)
