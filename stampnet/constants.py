"""Stamp geometry and class names: the one place every part of stampnet reads them from.

ZTF alert cutouts are 63x63 pixels of 1.01 arcsec, centred on the candidate (Masci et al. 2019).
The channel order (science, template, difference) is the one ALeRCE's stamp classifier stacks.
"""

STAMP_SIZE = 63
PIXEL_SCALE_ARCSEC = 1.01

#: Alert packet field names of the three cutouts, in channel order.
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
#: Short channel names, in the same order; also the names of the serving-signature inputs.
CHANNELS = ("science", "template", "difference")
NUM_CHANNELS = len(CHANNELS)
STAMP_SHAPE = (STAMP_SIZE, STAMP_SIZE, NUM_CHANNELS)

#: The five classes of the ALeRCE stamp classifier (Carrasco-Davis et al. 2021), output order.
ALERCE_CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")

#: Labels in ../shared/data/ztf/labels.csv that do not name a class to learn.
UNLABELLED = "unknown"

#: ZTF filter ids (candidate.fid) and their band names.
BANDS = {1: "g", 2: "r", 3: "i"}

#: Crop sizes the stamp models accept (ALeRCE uses 21; the full stamp is 63).
DEFAULT_CROP_SIZE = 21
