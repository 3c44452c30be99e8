"""A demo region: a fictional mid-size city, 清河市, with every layer filled in.

A river valley between hills, a dense core with small chemical plants, a chemical park
downstream, tailings ponds up the side valleys (three of them head-top), two railways, one road
network with dangerous sections that every fire station and protection target is on (but the
villages behind the ponds), high-rises with and without fire lanes. The build is deterministic
(same seed, same bytes) and records what each part was built to show, so tests and demos can
check the analysis against a known answer.
"""

from geo_service.demo.build import DemoSummary, build_demo

__all__ = ["DemoSummary", "build_demo"]
