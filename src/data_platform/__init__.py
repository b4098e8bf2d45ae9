"""The Data Platform: the Lance lake and supervised user-script tasks, behind a REST API."""
