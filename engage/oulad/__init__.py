"""OULAD (Open University Learning Analytics Dataset) as product events: read, map, replay.

Kuzilek J., Hlosta M., Zdrahal Z. "Open University Learning Analytics dataset", Scientific Data 4, 170171
(2017), doi:10.1038/sdata.2017.171, licence CC BY 4.0.
"""
