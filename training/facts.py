"""Widely known facts as structured data, and the questions and answers the assistant learns from them.

    for ex in fact_exchanges(rng, split): ...     # FactQA(user, reply, answer, group, relation)

Each `Relation` holds (subject, answer) pairs, question wordings and answer wordings. Two held-out
splits keep the evaluation honest (training/eval_set.py):
- by wording: every 5th question wording of a relation (`tool_words.pick`) is never trained on;
- by fact: where a relation has a `teach` form ("Tell me about Peru." -> "Peru is a country in South
  America, and its capital is Lima."), every HELD_FACT_EVERY-th fact is trained only in that form, never
  as a question, so asking it measures whether the model can answer from what it was told.
Answers are short spoken sentences; the answer word itself is what the evaluation looks for.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from training.tool_words import number_words, pick

HELD_FACT_EVERY = 7  # every 7th fact of a relation with a teach form is held out as a question
# Splits of fact_exchanges: training rows, held-out wordings of trained facts, held-out facts.
TRAIN, HELD_WORDING, HELD_FACT = "train", "held_wording", "held_fact"

COUNTRIES = [  # (country, capital, continent)
    ("France", "Paris", "Europe"), ("Germany", "Berlin", "Europe"), ("Italy", "Rome", "Europe"),
    ("Spain", "Madrid", "Europe"), ("Portugal", "Lisbon", "Europe"),
    ("the United Kingdom", "London", "Europe"),
    ("Ireland", "Dublin", "Europe"), ("the Netherlands", "Amsterdam", "Europe"),
    ("Belgium", "Brussels", "Europe"),
    ("Austria", "Vienna", "Europe"), ("Switzerland", "Bern", "Europe"), ("Poland", "Warsaw", "Europe"),
    ("Greece", "Athens", "Europe"), ("Sweden", "Stockholm", "Europe"), ("Norway", "Oslo", "Europe"),
    ("Denmark", "Copenhagen", "Europe"), ("Finland", "Helsinki", "Europe"), ("Russia", "Moscow", "Europe"),
    ("Hungary", "Budapest", "Europe"), ("the Czech Republic", "Prague", "Europe"),
    ("Ukraine", "Kyiv", "Europe"),
    ("Romania", "Bucharest", "Europe"), ("Turkey", "Ankara", "Asia"), ("Japan", "Tokyo", "Asia"),
    ("China", "Beijing", "Asia"), ("India", "New Delhi", "Asia"), ("South Korea", "Seoul", "Asia"),
    ("Thailand", "Bangkok", "Asia"), ("Vietnam", "Hanoi", "Asia"), ("Indonesia", "Jakarta", "Asia"),
    ("the Philippines", "Manila", "Asia"), ("Pakistan", "Islamabad", "Asia"), ("Iran", "Tehran", "Asia"),
    ("Israel", "Jerusalem", "Asia"), ("Saudi Arabia", "Riyadh", "Asia"), ("Egypt", "Cairo", "Africa"),
    ("Kenya", "Nairobi", "Africa"), ("Nigeria", "Abuja", "Africa"), ("South Africa", "Pretoria", "Africa"),
    ("Morocco", "Rabat", "Africa"), ("Ethiopia", "Addis Ababa", "Africa"), ("Ghana", "Accra", "Africa"),
    ("the United States", "Washington, D.C.", "North America"), ("Canada", "Ottawa", "North America"),
    ("Mexico", "Mexico City", "North America"), ("Cuba", "Havana", "North America"),
    ("Brazil", "Brasilia", "South America"), ("Argentina", "Buenos Aires", "South America"),
    ("Peru", "Lima", "South America"), ("Chile", "Santiago", "South America"),
    ("Colombia", "Bogota", "South America"), ("Venezuela", "Caracas", "South America"),
    ("Australia", "Canberra", "Oceania"), ("New Zealand", "Wellington", "Oceania"),
    ("Iceland", "Reykjavik", "Europe"), ("Scotland", "Edinburgh", "Europe"),
]  # fmt: skip
LANDMARKS = [  # (landmark, where it is)
    ("the Eiffel Tower", "Paris, France"), ("the Statue of Liberty", "New York"), ("Big Ben", "London"),
    ("the Colosseum", "Rome, Italy"), ("the Great Wall", "China"), ("the Taj Mahal", "Agra, India"),
    ("the Sydney Opera House", "Sydney, Australia"), ("Machu Picchu", "Peru"),
    ("the Pyramids of Giza", "Egypt, near Cairo"), ("the Golden Gate Bridge", "San Francisco"),
    ("the Leaning Tower of Pisa", "Pisa, Italy"), ("Mount Everest", "the Himalayas, in Nepal"),
    ("Christ the Redeemer", "Rio de Janeiro, Brazil"), ("Stonehenge", "England"),
    ("the Acropolis", "Athens, Greece"), ("the Sagrada Familia", "Barcelona, Spain"),
    ("the Kremlin", "Moscow"), ("Niagara Falls", "the border of the United States and Canada"),
    ("the Grand Canyon", "Arizona"), ("the Louvre", "Paris, France"), ("Mount Fuji", "Japan"),
    ("the Brandenburg Gate", "Berlin, Germany"), ("the Burj Khalifa", "Dubai"), ("Petra", "Jordan"),
    ("Angkor Wat", "Cambodia"), ("the Tower of London", "London"), ("the Empire State Building", "New York"),
    ("the Forbidden City", "Beijing, China"), ("Times Square", "New York"),
    ("the Alhambra", "Granada, Spain"),
]  # fmt: skip
HELLO = [  # (language, hello, thank you)
    ("Spanish", "hola", "gracias"), ("French", "bonjour", "merci"), ("German", "hallo", "danke"),
    ("Italian", "ciao", "grazie"), ("Japanese", "konnichiwa", "arigato"), ("Portuguese", "ola", "obrigado"),
    ("Chinese", "ni hao", "xie xie"), ("Hindi", "namaste", "dhanyavaad"), ("Swahili", "jambo", "asante"),
    ("Hawaiian", "aloha", "mahalo"), ("Russian", "privet", "spasibo"), ("Korean", "annyeong", "kamsahamnida"),
    ("Arabic", "marhaba", "shukran"), ("Swedish", "hej", "tack"), ("Turkish", "merhaba", "tesekkurler"),
    ("Greek", "yia sou", "efharisto"), ("Hebrew", "shalom", "toda"), ("Dutch", "hallo", "dank je"),
    ("Polish", "czesc", "dziekuje"), ("Thai", "sawasdee", "khob khun"), ("Danish", "hej", "tak"),
    ("Finnish", "hei", "kiitos"), ("Norwegian", "hei", "takk"), ("Irish", "dia duit", "go raibh maith agat"),
]  # fmt: skip
HOW_MANY = [  # (what is counted, how many)
    ("days in a week", 7), ("hours in a day", 24), ("minutes in an hour", 60), ("seconds in a minute", 60),
    ("days in a year", 365), ("months in a year", 12), ("weeks in a year", 52), ("days in a leap year", 366),
    ("legs does a spider have", 8), ("legs does an insect have", 6), ("sides does a triangle have", 3),
    ("sides does a square have", 4), ("sides does a hexagon have", 6), ("sides does an octagon have", 8),
    ("sides does a pentagon have", 5), ("continents are there", 7), ("oceans are there", 5),
    ("players are on a soccer team", 11), ("cards are in a deck", 52), ("strings does a guitar have", 6),
    ("keys does a piano have", 88), ("bones are in the human body", 206), ("teeth does an adult have", 32),
    ("hearts does an octopus have", 3), ("colors are in a rainbow", 7),
    ("planets are in the solar system", 8),
    ("states are in the United States", 50), ("years are in a century", 100), ("years are in a decade", 10),
    ("letters are in the English alphabet", 26), ("players are on a basketball team", 5),
    ("chambers does the human heart have", 4), ("eggs are in a dozen", 12), ("days are in February", 28),
    ("zeros are in a million", 6), ("legs does a dog have", 4), ("wheels does a tricycle have", 3),
    ("players are on a volleyball team", 6), ("squares are on a chessboard", 64),
    ("sides does a die have", 6),
    ("days are in a weekend", 2), ("days are in September", 30), ("days are in January", 31),
    ("legs does an octopus have", 8), ("moons does Earth have", 1), ("years are in a millennium", 1000),
]  # fmt: skip
ANIMALS = [  # (animal, its young, the sound it makes)
    ("dog", "puppy", "barks"), ("cat", "kitten", "meows"), ("cow", "calf", "moos"),
    ("horse", "foal", "neighs"),
    ("sheep", "lamb", "baas"), ("pig", "piglet", "oinks"), ("duck", "duckling", "quacks"),
    ("goat", "kid", "bleats"), ("lion", "cub", "roars"), ("bear", "cub", "growls"),
    ("frog", "tadpole", "croaks"),
    ("owl", "owlet", "hoots"), ("chicken", "chick", "clucks"), ("goose", "gosling", "honks"),
    ("kangaroo", "joey", "grunts"), ("deer", "fawn", "bleats"), ("swan", "cygnet", "hisses"),
    ("wolf", "pup", "howls"), ("elephant", "calf", "trumpets"), ("snake", "snakelet", "hisses"),
    ("donkey", "foal", "brays"), ("mouse", "pup", "squeaks"), ("bee", "larva", "buzzes"),
]  # fmt: skip
TRIVIA = [  # (question wordings, answer, the word the answer must contain)
    (["What is the largest planet", "Which planet is the biggest"],
     "Jupiter is the largest planet.", "Jupiter"),
    (["What is the smallest planet", "Which planet is the smallest"],
     "Mercury is the smallest planet.", "Mercury"),
    (["Which planet is closest to the sun", "What planet is nearest the sun"],
     "Mercury is the closest planet to the sun.", "Mercury"),
    (["Which planet is the red planet", "What is the red planet"], "Mars is called the red planet.", "Mars"),
    (["Which planet has the famous rings", "What planet has big rings"],
     "Saturn is famous for its rings.", "Saturn"),
    (["What is the hottest planet", "Which planet is the hottest"], "Venus is the hottest planet.", "Venus"),
    (["Which planet do we live on", "What planet are we on"], "We live on Earth.", "Earth"),
    (["Which planet is farthest from the sun", "What is the last planet"],
     "Neptune is the farthest planet from the sun.", "Neptune"),
    (["Which planet is third from the sun", "What is the third planet from the sun"],
     "Earth is the third planet from the sun.", "Earth"),
    (["What is the closest star to Earth", "Which star is nearest to us"],
     "The sun is the closest star to Earth.", "sun"),
    (["What is the largest ocean", "Which ocean is the biggest"],
     "The Pacific is the largest ocean.", "Pacific"),
    (["What is the longest river", "Which river is the longest in the world"],
     "The Nile is usually called the longest river.", "Nile"),
    (["What is the tallest mountain", "Which mountain is the highest"],
     "Mount Everest is the tallest mountain.", "Everest"),
    (["What is the largest animal", "Which animal is the biggest"],
     "The blue whale is the largest animal.", "blue whale"),
    (["What is the tallest animal", "Which animal is the tallest"],
     "The giraffe is the tallest animal.", "giraffe"),
    (["What is the fastest land animal", "Which animal runs the fastest"],
     "The cheetah is the fastest land animal.", "cheetah"),
    (["What is the largest country", "Which country is the biggest"],
     "Russia is the largest country by area.", "Russia"),
    (["What is the largest desert", "Which hot desert is the biggest"],
     "The Sahara is the largest hot desert.", "Sahara"),
    (["Who wrote Romeo and Juliet", "Who is the author of Romeo and Juliet"],
     "William Shakespeare wrote Romeo and Juliet.", "Shakespeare"),
    (["Who painted the Mona Lisa", "Who made the Mona Lisa"],
     "Leonardo da Vinci painted the Mona Lisa.", "Leonardo"),
    (["Who was the first person on the moon", "Who first walked on the moon"],
     "Neil Armstrong was the first person on the moon, in 1969.", "Armstrong"),
    (["At what temperature does water boil", "What is the boiling point of water"],
     "Water boils at 100 degrees Celsius, or 212 Fahrenheit.", "100"),
    (["At what temperature does water freeze", "What is the freezing point of water"],
     "Water freezes at 0 degrees Celsius, or 32 Fahrenheit.", "0"),
    (["What gas do plants take in", "What do plants breathe in"],
     "Plants take in carbon dioxide and give out oxygen.", "carbon dioxide"),
    (["What gas do we breathe in", "What do people need to breathe"], "We breathe in oxygen.", "oxygen"),
    (["What do bees make", "What do bees produce"], "Bees make honey and wax.", "honey"),
    (["What is the chemical symbol for gold", "What is gold's symbol"], "The symbol for gold is Au.", "Au"),
    (["What is water made of", "What is the formula for water"],
     "Water is H2O: two hydrogen atoms and one oxygen atom.", "H2O"),
    (["How long does Earth take to go around the sun", "How long is a year on Earth"],
     "Earth goes around the sun in about 365 days.", "365"),
    (["What is the biggest bone in the body", "Which bone is the longest"],
     "The thigh bone, the femur, is the longest bone.", "femur"),
    (["What is the largest organ of the body", "Which organ is the biggest"],
     "The skin is the largest organ.", "skin"),
    (["What color do you get from blue and yellow", "What do blue and yellow make"],
     "Blue and yellow make green.", "green"),
    (["What color do you get from red and white", "What do red and white make"],
     "Red and white make pink.", "pink"),
    (["What color do you get from red and yellow", "What do red and yellow make"],
     "Red and yellow make orange.", "orange"),
    (["What is the fastest bird", "Which bird is the fastest"],
     "The peregrine falcon is the fastest bird.", "falcon"),
    (["What is the largest bird", "Which bird is the biggest"],
     "The ostrich is the largest bird.", "ostrich"),
    (["What do pandas eat", "What is a panda's food"], "Pandas eat mostly bamboo.", "bamboo"),
    (["What do cows eat", "What is a cow's food"], "Cows eat grass and hay.", "grass"),
    (["Who invented the telephone", "Who made the first telephone"],
     "Alexander Graham Bell is credited with the telephone.", "Bell"),
    (["Who invented the light bulb", "Who made the light bulb work"],
     "Thomas Edison made the first practical light bulb.", "Edison"),
    (["What is the capital of the moon", "Who lives on the moon"],
     "Nobody lives on the moon, so it has no capital.", "nobody"),
    (["How long should I boil an egg", "How long do I boil an egg for"],
     "About 7 minutes for a soft egg and 10 minutes for a hard boiled one.", "minutes"),
    (["How long does rice take to cook", "How long should I cook rice"],
     "White rice takes about 15 to 20 minutes.", "minutes"),
    (["How long should I cook pasta", "How long does pasta take"],
     "Most pasta takes 8 to 12 minutes in boiling water.", "minutes"),
    (["How long should I steep tea", "How long do I let tea brew"],
     "Three to five minutes is right for most tea.", "minutes"),
    (["How much water should I drink a day", "How much water do I need each day"],
     "About eight glasses, or two liters, a day is a common guide.", "glasses"),
    (["How much sleep do adults need", "How many hours should I sleep"],
     "Most adults need seven to nine hours of sleep.", "hours"),
    (["What is the speed of light", "How fast is light"],
     "Light travels about 300,000 kilometers per second.", "300,000"),
]  # fmt: skip
# Wrappers around a trivia question; the held-out ones (every 5th) only appear in the evaluation.
TRIVIA_WRAPPERS = [
    "{q}?", "Do you know {q_low}?", "Quick question, {q_low}?", "Can you tell me {q_low}?", "Hey, {q_low}?",
    "{q}? I forgot.", "Tell me, {q_low}?", "I was wondering, {q_low}?", "{q}, do you know?",
    "Any idea {q_low}?",
]  # fmt: skip


@dataclass(frozen=True)
class Relation:
    name: str
    facts: list[tuple[str, str]]  # (subject, answer)
    asks: list[str]  # question wordings; {x} the subject
    answers: list[str]  # answer wordings; {x} the subject, {y} the answer
    teach: list[str] = field(default_factory=list)  # requests that get the teach statement
    statement: str = ""  # what a teach request gets; {x}, {y} and the fact's extra slots


@dataclass(frozen=True)
class FactQA:
    user: str
    reply: str
    answer: str  # the word or words a useful reply contains
    group: str  # "facts:<relation>:<subject>"
    relation: str


RELATIONS = [
    Relation(
        "capital",
        [(c, cap) for c, cap, _ in COUNTRIES],
        [
            "What is the capital of {x}", "What's the capital of {x}", "Which city is the capital of {x}",
            "Tell me the capital of {x}", "What's the capital city of {x}",
            "Do you know the capital of {x}",
            "Capital of {x}", "What city is the capital of {x}", "Name the capital of {x}",
            "What's {x}'s capital",
        ],
        ["The capital of {x} is {y}.", "It's {y}.", "{y} is the capital of {x}.", "{y}."],
        ["Tell me about {x}", "What do you know about {x}", "Tell me something about {x}"],
        "{X} is a country in {continent}, and its capital is {y}.",
    ),
    Relation(
        "landmark",
        LANDMARKS,
        [
            "Where is {x}", "Where's {x}", "Where can I find {x}", "Where is {x} located",
            "Where's {x} again",
            "In which place is {x}", "Which country is {x} in", "Where would I go to see {x}",
            "Where exactly is {x}", "Do you know where {x} is",
        ],
        ["{X} is in {y}.", "It's in {y}.", "You'll find {x} in {y}."],
        ["Tell me about {x}", "What is {x}", "Have you heard of {x}"],
        "{X} is a famous sight in {y}.",
    ),
    Relation(
        "hello",
        [(lang, hi) for lang, hi, _ in HELLO],
        [
            "How do you say hello in {x}", "What's hello in {x}", "How do I say hi in {x}",
            "What is hello in {x}", "How do you greet someone in {x}", "Say hello in {x}",
            "How do I say hello in {x}", "What's the {x} word for hello", "Teach me hello in {x}",
            "Hello in {x}",
        ],
        ["In {x}, you say {y}.", "You say {y}.", "{Y} means hello in {x}.", "It's {y}."],
        ["Teach me some {x}", "Teach me a word in {x}", "Say something in {x}"],
        "In {x}, hello is {y} and thank you is {thanks}.",
    ),
    Relation(
        "thanks",
        [(lang, th) for lang, _, th in HELLO],
        [
            "How do you say thank you in {x}", "What's thank you in {x}", "How do I say thanks in {x}",
            "What is thanks in {x}", "How do I thank someone in {x}", "Thank you in {x}",
            "What's the {x} word for thank you", "Say thank you in {x}", "How do you say thanks in {x}",
            "Teach me thank you in {x}",
        ],
        ["In {x}, you say {y}.", "You say {y}.", "{Y} means thank you in {x}.", "It's {y}."],
    ),
    Relation(
        "how_many",
        [(what, str(n)) for what, n in HOW_MANY],
        [
            "How many {x}", "Do you know how many {x}", "Tell me how many {x}", "How many {x} again",
            "Quick question, how many {x}", "Can you tell me how many {x}", "I forgot, how many {x}",
            "So how many {x}", "Remind me how many {x}", "Any idea how many {x}",
        ],
        ["{Y_words}.", "The answer is {y_words}.", "{Y_words}, I believe.", "There are {y_words}."],
    ),
    Relation(
        "baby",
        [(a, young) for a, young, _ in ANIMALS],
        [
            "What is a baby {x} called", "What do you call a baby {x}", "What's a baby {x} called",
            "What's the name for a baby {x}", "A baby {x} is called what", "What do we call a young {x}",
            "What's a young {x} called", "Name for a baby {x}", "What is the word for a baby {x}",
            "What are baby {x}s called",
        ],
        ["A baby {x} is called a {y}.", "It's called a {y}.", "A {y}."],
        ["Tell me about the {x}", "What do you know about the {x}", "Tell me a fact about the {x}"],
        "A {x} {sound}, and its baby is called a {y}.",
    ),
    Relation(
        "sound",
        [(a, sound) for a, _, sound in ANIMALS],
        [
            "What sound does a {x} make", "What noise does a {x} make", "What does a {x} say",
            "How does a {x} sound", "What sound do {x}s make", "What noise do {x}s make",
            "How does a {x} go", "What does a {x} sound like", "Which sound does a {x} make",
            "Do you know what sound a {x} makes",
        ],
        ["A {x} {y}.", "It {y}.", "{X}s {y_plural}."],
    ),
]  # fmt: skip


def _slots(rel: Relation, x: str, y: str) -> dict:
    extra = {
        "continent": next((c for country, _, c in COUNTRIES if country == x), ""),
        "thanks": next((t for lang, _, t in HELLO if lang == x), ""),
        "sound": next((s for a, _, s in ANIMALS if a == x), ""),
    }
    words = number_words(int(y)) if y.isdigit() and int(y) < 1000 else y
    if rel.name == "how_many":
        words = f"{words} {x.split(' ')[0]}"
    up = {k.capitalize(): v[:1].upper() + v[1:] for k, v in {"x": x, "y": y, "y_words": words}.items()}
    plural = y[:-1] if y.endswith("s") else y  # "a dog barks" -> "dogs bark"
    return {"x": x, "y": y, "y_words": words, "y_plural": plural} | extra | up


def held_fact(rel: Relation, index: int) -> bool:
    return bool(rel.teach) and index % HELD_FACT_EVERY == HELD_FACT_EVERY - 1


def _relation_rows(rel: Relation, rng: random.Random, split: str, per_fact: int) -> Iterator[FactQA]:
    for i, (x, y) in enumerate(rel.facts):
        slots = _slots(rel, x, y)
        group = f"facts:{rel.name}:{x}"
        if rel.teach and split == TRAIN:  # every fact, held-out ones included, is taught as a statement
            for _ in range(max(1, per_fact // 3)):
                user = _ask(pick(rng, rel.teach, False, every=len(rel.teach) + 1), slots, rng)
                yield FactQA(user, rel.statement.format(**slots), y, group, rel.name)
        if (split == HELD_FACT) != held_fact(rel, i):
            continue
        for _ in range(per_fact if split == TRAIN else 1):
            user = _ask(pick(rng, rel.asks, split == HELD_WORDING), slots, rng)
            yield FactQA(user, rng.choice(rel.answers).format(**slots), y, group, rel.name)


def _ask(wording: str, slots: dict, rng: random.Random) -> str:
    text = wording.format(**slots)
    text = text[0].upper() + text[1:]
    return text if text[-1] in "?." else text + ("?" if rng.random() < 0.85 else "")


def _trivia_rows(rng: random.Random, split: str, per_fact: int) -> Iterator[FactQA]:
    if split == HELD_FACT:
        return
    for asks, reply, answer in TRIVIA:
        for _ in range(per_fact if split == TRAIN else 1):
            q = rng.choice(asks)
            wrapper = pick(rng, TRIVIA_WRAPPERS, split == HELD_WORDING)
            user = wrapper.format(q=q, q_low=q[0].lower() + q[1:])
            yield FactQA(user, reply, answer, f"facts:trivia:{asks[0]}", "trivia")


def fact_exchanges(rng: random.Random, split: str = TRAIN, per_fact: int = 12) -> list[FactQA]:
    """Question/answer rows of one split: TRAIN (`per_fact` questions per fact plus teach statements),
    HELD_WORDING (one question per trained fact, in an unseen wording) or HELD_FACT (one question per
    held-out fact, in a trained wording)."""
    if split not in (TRAIN, HELD_WORDING, HELD_FACT):
        raise ValueError(f"split must be one of {TRAIN}, {HELD_WORDING}, {HELD_FACT}; got {split!r}")
    rows = [row for rel in RELATIONS for row in _relation_rows(rel, rng, split, per_fact)]
    return rows + list(_trivia_rows(rng, split, per_fact))
