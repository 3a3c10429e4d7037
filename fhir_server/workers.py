"""Worker processes that do not outlive the server.

``dacs serve`` starts child processes (DICOM mapping, dose evaluation). A graceful stop ends them, but
a server killed outright (``kill -9``, the OOM killer) cannot: its children would live on as orphans,
holding the store open and memory, and a restarted server would start a second set beside them. Each
child therefore watches its parent and exits when it is gone (what it was doing is found again by the
next server: unevaluated studies at start-up, unmapped objects by recovery).
"""

from __future__ import annotations

import os
import threading
import time

WATCH_INTERVAL = 0.5  # seconds between two looks at the parent


def exit_with_parent() -> None:
    """In a child process: end it as soon as its parent process is gone (it is then re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)  # the parent died without stopping us: nothing here is worth finishing

    threading.Thread(target=watch, name="dacs-parent-watch", daemon=True).start()
