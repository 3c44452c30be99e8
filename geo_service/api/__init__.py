"""The web service: ``create_app(settings)`` builds the FastAPI app serving layers and the map."""

from geo_service.api.app import create_app

__all__ = ["create_app"]
