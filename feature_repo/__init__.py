"""The contract between folders: Feast entities, feature views, the event schema."""
