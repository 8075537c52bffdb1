"""Starting a run that a test will interrupt as a user would.

A process started in the background of a shell without job control (`cmd &`, nohup, some CI runners)
inherits SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt: a test that sends
SIGINT to such a run would test nothing but how the CI was launched. The run gets SIGINT's default
disposition back, as at a terminal, and its own session, so the signal reaches it alone."""

from __future__ import annotations

import signal


def as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPTIBLE = {"start_new_session": True, "preexec_fn": as_at_a_terminal}
