"""A deterministic sample catalogue for ``s3vl demo``: about 1,200 products with real text.

Products are built from hand-written parts (kinds of product per category, a description of
what each kind is for, materials, features) combined by a seeded generator, so every run
produces the same rows and the same ids. The words are ordinary English so that a semantic
model can tell trail running shoes from hiking boots, rain jackets from down parkas, or a
saucepan from a chef's knife.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 20241122


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    description: str
    category: str
    brand: str
    price: float
    in_stock: bool


# category -> [(product kind, what it is for)]
KINDS: dict[str, list[tuple[str, str]]] = {
    "shoes": [
        ("trail running shoes", "grippy lugged outsole for running on muddy forest trails and rocky mountain paths"),
        ("road running shoes", "cushioned lightweight trainer for running on asphalt, tempo runs and marathons"),
        ("hiking boots", "waterproof leather boots with ankle support for long hikes and backpacking trips"),
        ("approach shoes", "sticky rubber shoes for scrambling on rock on the way to the climbing crag"),
        ("sandals", "open sandals with adjustable straps for summer walks, beaches and rivers"),
        ("winter boots", "insulated snow boots that keep feet warm and dry in deep snow and ice"),
        ("casual sneakers", "everyday canvas sneakers for walking around town"),
    ],
    "jackets": [
        ("rain jacket", "waterproof breathable shell with a hood that keeps you dry in heavy rain"),
        ("down parka", "very warm insulated winter coat filled with goose down for freezing cold weather"),
        ("fleece jacket", "soft warm midlayer for cool evenings and layering under a shell"),
        ("windbreaker", "light packable jacket that blocks wind on runs and bike rides"),
        ("softshell jacket", "stretchy water-resistant jacket for climbing and ski touring"),
    ],
    "camping": [
        ("backpacking tent", "lightweight two-person tent for camping on multi-day backpacking trips"),
        ("sleeping bag", "warm mummy sleeping bag rated for cold nights under the stars"),
        ("sleeping pad", "inflatable insulated mattress for a comfortable night in the tent"),
        ("camp stove", "compact gas stove to boil water and cook meals at the campsite"),
        ("headlamp", "bright rechargeable head torch for night hikes and finding things in the tent"),
        ("trekking poles", "adjustable aluminium poles that save your knees on steep descents"),
    ],
    "backpacks": [
        ("hiking daypack", "comfortable 25 litre backpack for day hikes with a hydration sleeve"),
        ("trail running vest", "close-fitting running vest with soft flasks for long trail runs and ultramarathons"),
        ("travel backpack", "carry-on backpack with a laptop compartment for trips and flights"),
        ("school backpack", "durable backpack for books, notebooks and a lunch box"),
    ],
    "kitchen": [
        ("chef's knife", "sharp stainless steel kitchen knife for chopping vegetables, herbs and meat"),
        ("saucepan", "stainless pot for cooking pasta, rice, soups and sauces on the stove"),
        ("cast iron skillet", "heavy frying pan for searing steak, baking cornbread and frying eggs"),
        ("espresso machine", "coffee maker that brews espresso and steams milk for cappuccino"),
        ("blender", "powerful blender for smoothies, soups and crushed ice"),
        ("cutting board", "large wooden chopping board that is gentle on knife edges"),
    ],
    "electronics": [
        ("wireless headphones", "noise cancelling bluetooth headphones for music, calls and flights"),
        ("gps running watch", "sports watch with gps, heart rate and training plans for runners"),
        ("portable speaker", "waterproof bluetooth speaker for music at the beach or the park"),
        ("e-reader", "glare-free electronic book reader with weeks of battery life"),
        ("power bank", "portable battery that charges phones and headlamps on the go"),
    ],
    "toys": [
        ("jigsaw puzzle", "1000 piece puzzle for families and children who love puzzles"),
        ("building blocks set", "construction bricks that let kids build houses, cars and spaceships"),
        ("board game", "strategy board game for family game night with two to six players"),
        ("plush teddy bear", "soft cuddly stuffed animal, a gift for babies and toddlers"),
        ("remote control car", "fast radio controlled car for kids who love racing"),
    ],
    "books": [
        ("trail running guide", "book about training for trail races, from first 10k to mountain ultras"),
        ("cookbook", "recipes for quick weeknight dinners, pasta, curries and baking"),
        ("mystery novel", "a detective story full of twists set in a foggy seaside town"),
        ("field guide to birds", "illustrated guide to identifying birds on walks and hikes"),
        ("children's picture book", "a bedtime story with colourful pictures for young kids"),
    ],
}

BRANDS = ["Northpeak", "Ridgeline", "Altura", "Cascade", "Summit & Co", "Bluefjord", "Terra", "Lumen",
          "Kestrel", "Oakhaven", "Vireo", "Granite"]
ADJECTIVES = ["Classic", "Pro", "Lite", "Ultra", "Explorer", "Everyday", "Trek", "Edge", "Nova", "Venture"]
FEATURES = [
    "Available in several colours.", "Backed by a two-year warranty.", "Made with recycled materials.",
    "Loved by reviewers for its durability.", "A great gift.", "Easy to clean.", "Designed in the Alps.",
    "Tested by our staff over hundreds of kilometres.", "Comes with a storage bag.", "Vegan friendly.",
]
PRICES = {"shoes": (60, 220), "jackets": (50, 450), "camping": (20, 500), "backpacks": (30, 250),
          "kitchen": (15, 700), "electronics": (25, 450), "toys": (10, 120), "books": (8, 45)}


def catalog(count: int = 1200, seed: int = SEED) -> list[Product]:
    """``count`` products, identical on every call with the same seed."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    kinds = [(cat, kind, use) for cat, items in KINDS.items() for kind, use in items]
    products: list[Product] = []
    for i in range(1, count + 1):
        cat, kind, use = kinds[(i - 1) % len(kinds)]
        brand = rng.choice(BRANDS)
        adjective = rng.choice(ADJECTIVES)
        low, high = PRICES[cat]
        name = f"{brand} {adjective} {kind.title()}"
        description = f"{use.capitalize()}. {rng.choice(FEATURES)} {rng.choice(FEATURES)}"
        products.append(Product(i, name, description, cat, brand, round(rng.uniform(low, high), 2),
                                rng.random() > 0.15))
    return products
