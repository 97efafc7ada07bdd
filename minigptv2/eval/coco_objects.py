"""The 80 COCO object classes with the synonyms CHAIR counts as mentions of them.

Data from the CHAIR metric (Rohrbach et al., "Object Hallucination in Image Captioning",
EMNLP 2018; its ``synonyms.txt`` and the hard-coded rules of its ``chair.py``), re-typed as a
table. ``caption_objects`` finds the COCO objects a caption mentions the way that script does:
lower-case, tokenise, singularise, merge two-word names, map synonyms to their class.

Kept from the original on purpose, so scores stay comparable with published CHAIR numbers:
odd entries ("sub" is a sandwich, "bow" is a tie, "phon", "televison", "solider"), and two
synonyms the original file made unreachable (a doubled space turns "motor bike" and "cheesecake"
into " motor bike" and " cheesecake", which no token equals) are left out. Differences that
remain: tokens are ``[a-z0-9]`` runs (hyphenated words kept whole, as NLTK does), and plurals
are singularised with ``inflect`` (the original used ``pattern``), except that a word which is
itself in the vocabulary ("bus", "skis", "scissors") is kept as written.
"""

from __future__ import annotations

import re
from functools import cache

import inflect

_TABLE = """
person: girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby,
  worker, passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male,
  female, guy, traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater,
  skateboarder, foreigner, caller, offender, coworker, trespasser, patient, politician, soldier,
  grandchild, serviceman, walker, drinker, doctor, bicyclist, thief, buyer, teenager, student,
  camper, driver, solider, hunter, shopper, villager
bicycle: bike, unicycle, minibike, trike
car: automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi
motorcycle: scooter, motor cycle, motorbike, moped
airplane: jetliner, plane, air plane, monoplane, aircraft, jet, airbus, biplane, seaplane
bus: minibus, trolley
train: locomotive, tramway, caboose
truck: pickup, lorry, hauler, firetruck
boat: ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak,
  catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat,
  schooner, barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat,
  battleship, steamship
traffic light: street light, traffic signal, stop light, streetlight, stoplight
fire hydrant: hydrant
stop sign:
parking meter:
bench: pew
bird: ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron,
  hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird,
  woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay,
  flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow,
  raven, turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture,
  condor, macaw, peafowl, cockatoo, songbird
cat: kitten, feline, tabby
dog: puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie,
  pug, terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog,
  weimaraner, corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky
horse: colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc,
  bronco
sheep: lamb, ram, goat, ewe
cow: cattle, oxen, ox, calf, holstein, heifer, buffalo, bull, zebu, bison
elephant:
bear: panda
zebra:
giraffe:
backpack: knapsack
umbrella:
handbag: wallet, purse, briefcase
tie: bow, bow tie
suitcase: suit case, luggage
frisbee:
skis: ski
snowboard:
sports ball: ball
kite:
baseball bat:
baseball glove:
skateboard:
surfboard: longboard, skimboard, shortboard, wakeboard
tennis racket: racket
bottle:
wine glass:
cup:
fork:
knife: pocketknife, knive
spoon:
bowl: container
banana:
apple:
sandwich: burger, sub, cheeseburger, hamburger
orange:
broccoli:
carrot:
hot dog:
pizza:
donut: doughnut, bagel
cake: cupcake, shortcake, coffeecake, pancake
chair: seat, stool
couch: sofa, recliner, futon, loveseat, settee, chesterfield
potted plant: houseplant
bed:
dining table: table, desk
toilet: urinal, commode, lavatory, potty
tv: monitor, televison, television
laptop: computer, notebook, netbook, lenovo, macbook, laptop computer
mouse:
remote:
keyboard:
cell phone: mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone
microwave:
oven: stovetop, stove, stove top oven
toaster:
sink:
refrigerator: fridge, freezer
book:
clock:
vase:
scissors:
teddy bear: teddybear
hair drier: hairdryer
toothbrush:
"""


def _parse_table(table: str) -> dict[str, tuple[str, ...]]:
    classes: dict[str, tuple[str, ...]] = {}
    for entry in re.split(r"\n(?=\S)", table.strip()):
        name, _, rest = entry.partition(":")
        synonyms = [word.strip() for word in rest.replace("\n", " ").split(",") if word.strip()]
        classes[name.strip()] = tuple(synonyms)
    return classes


SYNONYMS: dict[str, tuple[str, ...]] = _parse_table(_TABLE)
"""COCO class name -> the other words that mean it."""

CLASS_OF: dict[str, str] = {
    word: name for name, synonyms in SYNONYMS.items() for word in (name, *synonyms)
}
"""Every counted word (class names included) -> its COCO class."""

# Two-token names read as one word, and qualifiers that would otherwise fire "person":
# "baby elephant" is an elephant, "passenger train" a train, a "toilet seat" is no chair.
_TWO_WORD_NAMES = (
    "motor bike, motor cycle, air plane, traffic light, street light, traffic signal, stop light, "
    "fire hydrant, stop sign, parking meter, suit case, sports ball, baseball bat, "
    "baseball glove, tennis racket, wine glass, hot dog, cell phone, mobile phone, teddy bear, "
    "hair drier, potted plant, bow tie, laptop computer, stove top oven, home plate, train track"
)
_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra")
_ANIMALS += ("giraffe", "animal", "cub")
TWO_WORDS: dict[str, str] = {name: name for name in _TWO_WORD_NAMES.split(", ")}
TWO_WORDS |= {f"{age} {animal}": animal for animal in _ANIMALS for age in ("baby", "adult")}
TWO_WORDS |= {f"passenger {vehicle}": vehicle for vehicle in ("jet", "train")}
TWO_WORDS |= {"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"}

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIRST_WORDS = {name.split()[0] for name in TWO_WORDS}
_ENGINE = inflect.engine()


@cache
def singular(word: str) -> str:
    """``word`` in the singular; vocabulary words ("bus", "skis") are kept as they are."""
    if word in CLASS_OF or word in _FIRST_WORDS:
        return word
    return _ENGINE.singular_noun(word) or word


def caption_objects(caption: str) -> list[tuple[str, str]]:
    """The COCO objects a caption mentions: ``(word as written, class)`` per mention, in order."""
    words = [singular(token) for token in _TOKEN.findall(caption.lower())]
    merged: list[str] = []
    index = 0
    while index < len(words):
        pair = " ".join(words[index : index + 2])
        if pair in TWO_WORDS:
            merged.append(TWO_WORDS[pair])
            index += 2
        else:
            merged.append(words[index])
            index += 1
    if "toilet" in merged and "seat" in merged:
        merged = [word for word in merged if word != "seat"]
    return [(word, CLASS_OF[word]) for word in merged if word in CLASS_OF]
