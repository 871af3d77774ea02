"""``python -m rollback``: the rollback webhook service."""

from rollback.app import main

main()
