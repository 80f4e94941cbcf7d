"""Stand-ins for outside services, used by the tests and run by the local stack."""
