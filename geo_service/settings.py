"""Configuration from the environment (prefix ``GEORISK_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where georisk keeps its data and which store it uses.

    With no ``database_url`` georisk uses the embedded store: one GeoPackage under ``data_dir``,
    no server to install. With ``database_url`` set (``postgresql+psycopg://…``) it uses PostGIS.
    """

    model_config = SettingsConfigDict(env_prefix="GEORISK_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("georisk-data"),
        description="Folder of the embedded store (GeoPackage) and of stored rasters.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostGIS database; when set, PostGIS is the store.",
    )
    catalogue_dir: Path | None = Field(
        default=None,
        description="Folder of layer files (*.yaml); default: the catalogue shipped with georisk.",
    )
    tiles_dir: Path = Field(
        default=Path("tiles"),
        description="Folder of built tile sets: `georisk tiles build` writes <layer>.mbtiles here.",
    )
    tile_cache_mb: float = Field(
        default=64,
        ge=0,
        description="Memory (MiB) for tiles kept between requests; 0 keeps none.",
    )
    tile_max_age: int = Field(
        default=0,
        ge=0,
        description="Seconds a client may use a tile without asking again (Cache-Control "
        "max-age); 0: clients revalidate each time, answered 304 while the data is unchanged.",
    )
