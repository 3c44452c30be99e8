"""The same files imported into the embedded store and into PostGIS give the same features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_service.chinacrs import wgs84_to_bd09
from geo_service.importer import import_file
from geo_service.store.gpkg import GeoPackageStore
from geo_service.store.postgis import PostGISStore


def _files(tmp_path: Path) -> list[tuple[str, Path, dict[str, str]]]:
    plants = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "id": f"plant-{i}",
                    "name": f"清河{i}号化工厂",
                    "size": ["small", "medium", "large"][i % 3],
                    "processes": ["nitration", "chlorination"][: i % 3],
                    "major_hazard_grade": [None, 1, 3][i % 3],
                    "relocation_status": "pending",
                    "relocation_deadline": "2022-12-31",
                    "in_chemical_park": i % 2 == 0,
                    "employees": 10 * i,
                    "admin_code": "429001",
                },
                "geometry": {"type": "Point", "coordinates": [110.6 + i / 200, 30.55 + i / 300]},
            }
            for i in range(12)
        ],
    }
    plants["features"][3]["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[110.61, 30.56], [110.62, 30.56], [110.62, 30.57], [110.61, 30.56]]],
    }
    (tmp_path / "plants.geojson").write_text(json.dumps(plants, ensure_ascii=False))

    lon, lat = np.linspace(110.55, 110.65, 6), np.linspace(30.50, 30.60, 6)
    blon, blat = wgs84_to_bd09(lon, lat)
    pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(6)],
            "name": [f"学校{i}" for i in range(6)],
            "category": [
                "school",
                "kindergarten",
                "hospital",
                "elderly_home",
                "residential",
                "water_intake",
            ],
            "occupants": [1200, 300, 800, 150, 5000, None],
            "lng": blon,
            "lat": blat,
        }
    ).to_csv(tmp_path / "baidu.csv", index=False)

    with rasterio.open(
        tmp_path / "pop.tif",
        "w",
        driver="GTiff",
        width=20,
        height=10,
        count=1,
        dtype="float32",
        crs="EPSG:4546",
        transform=rasterio.transform.from_origin(460000, 3383000, 100, 100),
        nodata=-1,
    ) as dst:
        dst.write(np.arange(200, dtype="float32").reshape(10, 20), 1)
    ponds = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "id": "pond-1",
                    "name": "石门沟尾矿库",
                    "total_capacity_m3": 4.5e6,
                    "dam_height_m": 42,
                    "pond_area": {
                        "type": "Polygon",
                        "coordinates": [
                            [[110.60, 30.56], [110.61, 30.56], [110.605, 30.57], [110.60, 30.56]]
                        ],
                    },
                },
                "geometry": {"type": "Point", "coordinates": [110.605, 30.555]},
            },
            {
                "type": "Feature",
                "properties": {"id": "pond-2", "name": "青龙沟尾矿库", "dam_height_m": 25},
                "geometry": {"type": "Point", "coordinates": [110.62, 30.54]},
            },
        ],
    }
    (tmp_path / "ponds.geojson").write_text(json.dumps(ponds, ensure_ascii=False))
    return [
        ("chemical_plants", tmp_path / "plants.geojson", {}),
        ("tailings_ponds", tmp_path / "ponds.geojson", {}),
        ("protection_targets", tmp_path / "baidu.csv", {"crs": "bd09"}),
        ("population", tmp_path / "pop.tif", {}),
    ]


def test_same_files_same_features_in_both_stores(
    tmp_path: Path, gpkg_store: GeoPackageStore, postgis_store: PostGISStore
) -> None:
    for layer, path, options in _files(tmp_path):
        for store in (gpkg_store, postgis_store):
            report = import_file(store, layer, path, **options)
            assert report.ok, [str(p) for p in report.errors]
            again = import_file(store, layer, path, **options)  # re-import updates
            assert again.ok
    ponds = postgis_store.read("tailings_ponds").set_index("id")
    assert ponds.loc["pond-1", "pond_area"].geom_type == "Polygon"
    assert ponds["grade"].tolist() == [4, 5]  # derived from capacity and height on import
    assert_geodataframe_equal(
        gpkg_store.read("tailings_ponds"), postgis_store.read("tailings_ponds")
    )
    for layer in ("chemical_plants", "protection_targets"):
        embedded, postgis = gpkg_store.read(layer), postgis_store.read(layer)
        assert len(embedded) > 0
        assert_geodataframe_equal(embedded, postgis, check_less_precise=False)
        box = (110.58, 30.52, 110.62, 30.58)
        assert_geodataframe_equal(
            gpkg_store.read(layer, bbox=box), postgis_store.read(layer, bbox=box)
        )
        centre = shapely.Point(110.6, 30.55)
        near_a, near_b = (
            gpkg_store.near(layer, centre, 6000),
            postgis_store.near(layer, centre, 6000),
        )
        assert near_a["id"].tolist() == near_b["id"].tolist() and len(near_a) > 2
        assert np.allclose(near_a["distance_m"], near_b["distance_m"], rtol=1e-3)
    assert set(postgis_store.read("protection_targets")["source_crs"]) == {"bd09"}
    with (
        rasterio.open(gpkg_store.raster_path("population")) as a,
        rasterio.open(postgis_store.raster_path("population")) as b,
    ):
        assert (
            np.array_equal(a.read(1), b.read(1)) and a.crs == b.crs and a.transform == b.transform
        )
