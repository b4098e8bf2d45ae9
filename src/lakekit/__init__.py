"""Pieces shared by both services and by user scripts: errors, ids, progress, model records."""
