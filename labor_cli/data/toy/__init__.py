"""The embedded toy domain pair: synthetic street scenes, a "rendered" source and a target.

``make_toy_pair(ToyOptions(directory=out_dir, shift="photo"))`` draws two small datasets on disk so that the demo and
the tests run the real loaders on the real layouts:

- ``out_dir/source`` in the GTA5 layout: ``images/NNNNN.png``, ``labels/NNNNN.png``
  (Cityscapes label ids), split lists ``train.txt`` / ``val.txt``; or, with
  ``source_layout="synthia"``, in SYNTHIA RAND-CITYSCAPES's: ``RGB/NNNNNNN.png``,
  ``GT/LABELS/NNNNNNN.png`` (16-bit colour PNGs, the SYNTHIA class id in the first channel);
- ``out_dir/target`` in the Cityscapes layout: ``leftImg8bit/<split>/<city>/...``,
  ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (label ids, not train ids);
- each with a ``labor-dataset.json`` that names it and its native size (and, for a target
  other than the photo one, its ``shift``).

Every scene is laid out in a little pinhole-camera world (a ground plane, a road with
sidewalks, facades and hedges along it, a skyline at the end of the street, objects standing
on the ground) and drawn with a depth buffer, so sizes fall off with distance and occlusion
is right. Rare objects are forced in turn, so any 3 consecutive images show all 19 evaluated
Cityscapes classes and so does every split; thin things (poles, lights, signs) keep a minimum
width of a few pixels at the default size.

The source is rendered: flat colours, crisp edges, clean textures, a sunny sky, some variety
of exposure and hard shadows. ``shift`` picks the target, one kind of domain shift each:

- ``photo`` (the default) differs the way Cityscapes differs from GTA5, mostly in ways a few
  target labels can fix: class-conditional changes of appearance that cause systematic
  confusions (asphalt sidewalks coloured like the source's road, brick walls coloured like the
  source's buildings, metal mesh fences instead of wooden slats, olive vegetation, yellow
  traffic-light housings like the source's signs, white buses like the source's trucks and
  trams, an overcast sky), other camera and object statistics (focal length, camera height,
  crowds, parked cars, the ego vehicle's bonnet, labelled "ego vehicle" and so ignored), and
  sensor effects (haze, shadows, exposure, white balance, vignetting, blur, noise);
- ``night`` keeps the source's colours but sees them at night: a dark frame lit by the moon,
  the city's glow and street lamps (sodium or LED, pools of light below them), the ego car's
  low beam and oncoming headlights; lamps, lit windows, traffic lights, car lights and the moon
  glow with a halo of glare; retroreflective signs flare in the low beam and vanish beyond it;
  a dark sky; fewer people, in dark clothes, more parked cars and lamps; motion blur, strong
  shot and read noise, vignetting. Small and dark classes (poles, people, bikes, fences) and
  what the dark makes alike (sky and roofs, vegetation and terrain) are the hard part.

Each image is drawn from its own generator ``np.random.default_rng([seed, stream, index])``
(one stream per style), so the same seed gives byte-identical files and images do not depend
on one another or on how many processes draw them.
"""

from labor_cli.data.toy.render import DOMAINS, SHIFTS, STYLES, TARGET_STYLES, render
from labor_cli.data.toy.scene import EGO_VEHICLE, VOID
from labor_cli.data.toy.styles import NIGHT_STYLE, PHOTO_STYLE, SOURCE_STYLE, TARGET_STYLE, NightLook, Style
from labor_cli.data.toy.writer import (
    GENERATOR,
    PRESETS,
    SOURCE_LAYOUTS,
    SPLITS,
    TARGET_CITIES,
    TARGET_FRAME,
    make_toy_pair,
    synthia_label,
)

__all__ = [
    "DOMAINS",
    "EGO_VEHICLE",
    "GENERATOR",
    "NIGHT_STYLE",
    "PHOTO_STYLE",
    "PRESETS",
    "SHIFTS",
    "SOURCE_LAYOUTS",
    "SOURCE_STYLE",
    "SPLITS",
    "STYLES",
    "TARGET_CITIES",
    "TARGET_FRAME",
    "TARGET_STYLE",
    "TARGET_STYLES",
    "VOID",
    "NightLook",
    "Style",
    "make_toy_pair",
    "render",
    "synthia_label",
]
