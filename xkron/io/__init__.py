"""Files: the NetCDF form of a fit (a DataTree; times decoded to the types they were written
from) and atomic writes. Knows DataTrees and files, not fits."""
