"""tap-usersnap: a Singer tap for the Usersnap platform REST API."""
