"""Configuration from the environment (prefix ``GEORISK_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geo_service.keys import ApiKey, configured_keys


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
    query_max_distance_m: float = Field(
        default=50_000,
        gt=0,
        description="Largest `distance_m` a buffer or proximity query accepts (metres); "
        "beyond it the query is refused (400).",
    )
    query_max_features: int = Field(
        default=10_000,
        ge=1,
        description="Most features a buffer query answers; when more lie within the distance "
        "the query is refused (413), never cut short: ask for fewer collections, a filter or "
        "a shorter distance.",
    )
    query_max_pairs: int = Field(
        default=100_000,
        ge=1,
        description="Most pairs a proximity query (`/query/near`) finds before paging; past it "
        "the query is refused (413).",
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
    map_inline_max_features: int = Field(
        default=2000,
        ge=0,
        description="The map writes a layer into its page only up to this many features; a "
        "larger layer comes as vector tiles, so the page stays light whatever the data size.",
    )
    map_inline_max_bytes: int = Field(
        default=600_000,
        ge=0,
        description="Bytes of GeoJSON the map page may hold in all (smallest layers first); "
        "layers past this budget come as vector tiles.",
    )
    map_standalone_max_features: int = Field(
        default=5000,
        ge=1,
        description="Features per layer written into a standalone map file (`georisk map -o`), "
        "which has no server to draw tiles; its layer control says `first N of M`.",
    )
    map_heat_max_points: int = Field(
        default=1500,
        ge=1,
        description="Points of the map's population heat layer (the raster is read coarser "
        "until it fits).",
    )
    map_marker_buffer_m: float = Field(
        default=500,
        gt=0,
        description="Distance (m) around a point placed with the map's drawing tool that the "
        "buffer query searches.",
    )
    # API keys (geo_service.keys): only their SHA-256 is configured, never a key
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="API keys as a JSON list of `{name, role, sha256}` (role `viewer`, "
        "`analyst` or `admin`); `georisk keys new` makes a key and prints its entry.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A TOML (`[[keys]]` tables) or YAML (`keys:` list) file of more API keys, "
        "each with name, role and sha256.",
    )
    api_read_requires_key: bool = Field(
        default=False,
        description="Whether the risk endpoints' reads (lists, progress, findings of a feature) "
        "also need a key (any role); status changes always need an analyst key.",
    )

    basemap: str = Field(
        default="none",
        description="The map's background: `none` (works everywhere); `osm` (OpenStreetMap, "
        "needs internet); `tianditu` (天地图, needs `tianditu_token`); `url` (the XYZ template "
        "in `basemap_url`, e.g. an intranet tile server); or the name of an offline tile set in "
        "`tiles_dir` (`<name>.mbtiles` or an XYZ folder `<name>/{z}/{x}/{y}.png`).",
    )
    basemap_url: str | None = Field(
        default=None,
        description="XYZ tile URL template for `basemap=url`, e.g. "
        "`http://tiles.intranet/{z}/{x}/{y}.png`.",
    )
    basemap_attribution: str = Field(
        default="", description="Credit shown on the map for `basemap=url`."
    )
    tianditu_token: SecretStr | None = Field(
        default=None,
        description="Tianditu (天地图) browser key for `basemap=tianditu`; kept out of code "
        "and logs (it is sent to browsers in tile URLs, as Tianditu's browser keys are meant to).",
    )

    @model_validator(mode="after")
    def _api_keys_usable(self) -> Settings:
        """An unreadable key file, a bad entry or a name used twice stops the start."""
        configured_keys(self)
        return self
