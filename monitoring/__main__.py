"""``python -m monitoring``: the drift / CTR monitor service."""

from monitoring.service import main

main()
