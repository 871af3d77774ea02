"""Progress for long jobs: a live bar in a terminal, a line every 10% in logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; renders a bar on a TTY, else prints at each 10%."""
    if console.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return

    done, printed_tenths = 0, 0

    def advance(n: int) -> None:
        nonlocal done, printed_tenths
        done += n
        tenths = min(10, done * 10 // total) if total else 10
        if tenths > printed_tenths:
            printed_tenths = tenths
            console.print(f"{description}: {done:,}/{total:,} ({done / max(total, 1):.0%})")

    yield advance
