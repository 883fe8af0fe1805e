"""The HTTP API and the web dashboard: FastAPI over the operations facade.

``service.OperationsService`` is the facade any front end can call (the routes are thin over
it); ``readmodel.ReadModel`` is what the API knows from the event bus; ``feed.BusFeed`` feeds it
in a background thread; ``app.create_app`` builds the FastAPI application; ``server`` composes a
service from a run's settings and serves it with uvicorn; ``auth`` checks the bearer token of
every state-changing route.
"""
