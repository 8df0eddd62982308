"""The embedded toy domain pair: synthetic street scenes, source "rendered", target "photographed".

``make_toy_pair(out_dir)`` draws two small datasets on disk so that the demo and the tests
run the real loaders on the real layouts:

- ``out_dir/source`` in the GTA5 layout: ``images/NNNNN.png``, ``labels/NNNNN.png``
  (Cityscapes label ids), split lists ``train.txt`` / ``val.txt``;
- ``out_dir/target`` in the Cityscapes layout: ``leftImg8bit/<split>/<city>/...``,
  ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (label ids, not train ids);
- each with a ``labor-dataset.json`` that names it and its native size.

Every scene is laid out in a little pinhole-camera world (a ground plane, a road with
sidewalks, facades and hedges along it, a skyline at the end of the street, objects standing
on the ground) and drawn with a depth buffer, so sizes fall off with distance and occlusion
is right. Rare objects are forced in turn, so any 3 consecutive images show all 19 evaluated
Cityscapes classes and so does every split; thin things (poles, lights, signs) keep a minimum
width of a few pixels at the default size.

The two domains differ the way GTA5 and Cityscapes do, mostly in ways a few target labels can
fix. The source is rendered: flat colours, crisp edges, clean textures, a sunny sky, some
variety of exposure and hard shadows. The target is photographed, with class-conditional
changes of appearance that cause systematic confusions (asphalt sidewalks coloured like the
source's road, brick walls coloured like the source's buildings, metal mesh fences instead of
wooden slats, olive vegetation, yellow traffic-light housings like the source's signs, white
buses like the source's trucks and trams, an overcast sky), other camera and object statistics
(focal length, camera height, crowds, parked cars, the ego vehicle's bonnet, labelled
"ego vehicle" and so ignored), and sensor effects (haze, shadows, exposure, white balance,
vignetting, blur, noise).

Each image is drawn from its own generator ``np.random.default_rng([seed, domain, index])``,
so the same seed gives byte-identical files and images do not depend on one another or on
how many processes draw them.
"""

from labor_cli.data.toy.render import DOMAINS, STYLES, render
from labor_cli.data.toy.scene import EGO_VEHICLE, VOID
from labor_cli.data.toy.styles import PHOTO_STYLE, SOURCE_STYLE, TARGET_STYLE, Style
from labor_cli.data.toy.writer import GENERATOR, PRESETS, SPLITS, TARGET_CITIES, TARGET_FRAME, make_toy_pair

__all__ = [
    "DOMAINS",
    "EGO_VEHICLE",
    "GENERATOR",
    "PHOTO_STYLE",
    "PRESETS",
    "SOURCE_STYLE",
    "SPLITS",
    "STYLES",
    "TARGET_CITIES",
    "TARGET_FRAME",
    "TARGET_STYLE",
    "VOID",
    "Style",
    "make_toy_pair",
    "render",
]
