"""The interactive risk map: folium page, overlays, controls, basemap, standalone file."""
