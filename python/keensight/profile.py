"""A gallery's interest profile: ImageNet classes grouped into interest categories.

The end use keensight was built for: categorise the photos of a user's gallery on the
device and summarise them as shares of interest categories. Each photo's ImageNet-1k
class probabilities (softmax of the logits) are summed per category and the photo goes
to the category with the largest mass, which is steadier than the top-1 class (120 dog
breeds share their probability among themselves; the sum does not care which breed).

The mapping (:data:`CATEGORY_CLASSES`) is data: class-index ranges of the standard
ILSVRC-2012 order (``keensight/data/imagenet_classes.txt``), chosen by hand:

* **pets** — the 118 dog breeds (151-268), domestic cats (281-285: tabby, tiger cat,
  Persian, Siamese, Egyptian cat), goldfish, Angora rabbit, hamster, guinea pig. Big cats
  (286-293) are wild, so they are *nature/animals*, not pets.
* **nature/animals** — every other animal (fish, birds, reptiles, amphibians,
  invertebrates, wild mammals: 0-397 minus pets), plants and fungi (984-998), hay,
  honeycomb, spider web.
* **food & drink** — dishes, fruit and vegetables (923-969 except hay), drinkware and
  bottles, coffee and tea makers, bakery, butcher shop, grocery store, restaurant, menu.
* **travel/outdoors** — landscapes (alp, cliff, coral reef, geyser, lakeside, promontory,
  sandbar, seashore, valley, volcano), landmarks and buildings (castle, church, mosque,
  palace, stupa, triumphal arch, bridges, obelisk, megalith, ...), camping (tent,
  sleeping bag, yurt), street scenery.
* **vehicles** — cars, trucks, buses, trains, boats, aircraft, bicycles and their parts.
* **sport** — balls, gym apparatus, rackets, skis, helmets, ballplayer, scuba diver.
* **music** — instruments, audio equipment, microphone, stage.
* **technology** — computers, phones, cameras, screens, printers, remote controls.
* **home** — furniture, kitchen and household appliances, cookware, bedding, tools.
* **fashion** — clothing, shoes, hats, jewellery, cosmetics, bags.
* **other** — everything not listed (weapons, office supplies, ...).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple, Union

import numpy as np

from ._numeric import softmax
from ._validate import matrix

__all__ = ["CATEGORIES", "CATEGORY_CLASSES", "class_categories", "category_probabilities",
           "assign_categories", "gallery_profile"]

Spec = Union[int, str]  # a class index or an inclusive range "a-b"

# Category -> ImageNet-1k class indices (ints and inclusive "a-b" ranges). A class belongs
# to at most one category; unlisted classes are "other".
CATEGORY_CLASSES: Dict[str, List[Spec]] = {
    "pets": [1, "151-268", "281-285", 332, 333, 338],
    "nature/animals": [0, "2-150", "269-280", "286-331", "334-337", "339-397", 599, 815, 958,
                       "984-998"],
    "food & drink": [415, 440, 441, 467, 503, 504, 505, 509, 550, 572, 582, 737, 762, 766, 809,
                     849, 901, 907, 922, "923-957", "959-969"],
    "travel/outdoors": [406, 410, 417, 425, 437, 442, 449, 460, 476, 483, 489, 497, 500, 525, 536,
                        538, 540, 557, 562, 576, 580, 634, 645, 646, 649, 663, 668, 672, 682, 698,
                        701, 703, 716, 718, 727, 743, 755, 797, 821, 825, 832, 839, 853, 858, 863,
                        873, 888, 900, 912, 915, 919, 920, "970-980"],
    "vehicles": [403, 404, 405, 407, 408, 436, 444, 466, 468, 472, 475, 479, 484, 510, 511, 535,
                 537, 547, 554, 555, 561, 565, 569, 571, 581, 586, 595, 603, 609, 612, 625, 627,
                 628, 654, 656, 660, 661, 665, 670, 671, 675, 685, 686, 690, 694, 705, 717, 734,
                 751, 757, 779, 780, 785, 802, 803, 812, 814, 817, 820, 829, 833, 847, 864, 866,
                 867, 870, 871, 874, 880, 895, 908, 913, 914],
    "sport": [416, 422, 429, 430, 433, 450, 518, 522, 543, 560, 573, 574, 575, 602, 615, 693, 702, 722,
              736, 746, 747, 752, 768, 770, 781, 795, 801, 805, 852, 890, 981, 983],
    "music": [401, 402, 420, 432, 481, 482, 485, 486, 494, 513, 541, 542, 546, 558, 566, 577, 579,
              593, 594, 605, 632, 641, 642, 650, 683, 684, 687, 699, 776, 819, 822, 848, 875, 881,
              889],
    "technology": [480, 487, 508, 527, 528, 530, 531, 548, 590, 592, 598, 613, 620, 622, 662, 664,
                   673, 681, 688, 707, 713, 732, 742, 745, 754, 759, 761, 782, 810, 844, 851, 872, 878,
                   916],
    "home": [409, 412, 421, 431, 434, 435, 448, 453, 462, 463, 469, 470, 473, 477, 492, 493, 495,
             499, 516, 520, 521, 526, 532, 533, 534, 539, 544, 545, 556, 559, 564, 567, 587, 588,
             589, 606, 611, 618, 619, 621, 647, 648, 651, 659, 677, 700, 706, 721, 725, 729, 731,
             738, 740, 741, 750, 753, 756, 760, 765, 773, 783, 784, 786, 789, 792, 794, 799, 804,
             811, 813, 827, 828, 831, 846, 850, 859, 861, 868, 876, 882, 883, 891, 892, 894, 896,
             897, 898, 899, 904, 905, 909, 910, 999],
    "fashion": [399, 400, 411, 414, 439, 443, 445, 451, 452, 457, 459, 464, 474, 501, 502, 514,
                515, 551, 552, 568, 578, 584, 585, 601, 608, 610, 614, 617, 629, 630, 631, 638,
                639, 652, 655, 658, 667, 679, 689, 697, 711, 735, 748, 774, 775, 788, 796, 806,
                808, 824, 834, 836, 837, 838, 841, 842, 869, 885, 887, 893, 903, 906, 911, 982],
}

OTHER = "other"
CATEGORIES: Tuple[str, ...] = tuple(CATEGORY_CLASSES) + (OTHER,)
_NUM_CLASSES = 1000


def _expand(specs: Iterable[Spec]) -> List[int]:
    out: List[int] = []
    for s in specs:
        if isinstance(s, str):
            a, b = (int(v) for v in s.split("-"))
            out.extend(range(a, b + 1))
        else:
            out.append(int(s))
    return out


def class_categories() -> np.ndarray:
    """Category index (into :data:`CATEGORIES`) of each of the 1000 ImageNet classes.

    Examples
    --------
    >>> from keensight.profile import CATEGORIES, class_categories
    >>> cats = class_categories()
    >>> CATEGORIES[cats[281]], CATEGORIES[cats[967]], CATEGORIES[cats[291]]
    ('pets', 'food & drink', 'nature/animals')
    """
    table = np.full(_NUM_CLASSES, len(CATEGORIES) - 1, dtype=np.int64)
    seen = np.zeros(_NUM_CLASSES, dtype=bool)
    for k, name in enumerate(CATEGORY_CLASSES):
        idx = np.asarray(_expand(CATEGORY_CLASSES[name]), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= _NUM_CLASSES):
            raise ValueError(f"category {name!r}: class index out of range")
        if seen[idx].any() or len(np.unique(idx)) != len(idx):
            raise ValueError(f"category {name!r}: classes {np.flatnonzero(seen[idx])} listed twice")
        seen[idx] = True
        table[idx] = k
    return table


def category_probabilities(logits: np.ndarray) -> np.ndarray:
    """(N, len(CATEGORIES)) probability mass of each category: softmax summed per category."""
    # Finite values only: a NaN row would otherwise land silently in the first category.
    logits = matrix(logits, "logits", dim=_NUM_CLASSES, allow_empty=True)
    probs = softmax(logits, axis=1)
    out = np.zeros((len(logits), len(CATEGORIES)))
    np.add.at(out.T, class_categories(), probs.T)
    return out


def assign_categories(logits: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Each image's category index and that category's probability mass."""
    mass = category_probabilities(logits)
    best = mass.argmax(axis=1)
    return best, mass[np.arange(len(mass)), best]


def gallery_profile(logits: np.ndarray) -> Dict[str, float]:
    """Share of the images in each category (sums to 1; categories with no image get 0).

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.profile import gallery_profile
    >>> logits = np.zeros((2, 1000)); logits[0, 281] = 20; logits[1, 967] = 20
    >>> p = gallery_profile(logits); p["pets"], p["food & drink"], p["music"]
    (0.5, 0.5, 0.0)
    """
    best, _ = assign_categories(logits)
    counts = np.bincount(best, minlength=len(CATEGORIES))
    total = max(int(counts.sum()), 1)
    return {name: float(counts[k]) / total for k, name in enumerate(CATEGORIES)}
