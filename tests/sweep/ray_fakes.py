"""A fake run for the Ray tests whose worker process can be killed mid-run, once.

``kill_at`` in the run's checkpoint folder (a one-shot control file, like the others of
:mod:`sweep_fakes`) makes the process SIGKILL itself when the run logs that step: what a
lost node or the out-of-memory killer does to a Ray worker.
"""

from __future__ import annotations

import os
import signal

from sweep_fakes import fake_train


def killable_train(spec, ctx):
    path = ctx.checkpoint_dir / "kill_at"
    kill_at = int(path.read_text()) if path.exists() else None
    if kill_at is not None:
        path.unlink()  # the retry must go on
        log = ctx.log_metrics

        def log_or_die(step, values):
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            log(step, values)

        ctx.log_metrics = log_or_die
    return fake_train(spec, ctx)
