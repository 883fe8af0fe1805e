"""The API's routes, one module per concern; each is thin over ``OperationsService``."""
