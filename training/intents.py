"""Everyday assistant requests that need no tool: what the assistant says, by intent (data v2).

    rows = intent_exchanges(rng, held=False)    # IntentQA(user, reply, expect, intent, group)

Each `Intent` has request wordings (with slots filled from word lists), reply wordings and `expect`: the
words one of which a useful reply contains (a greeting says hello, a film suggestion names a film, a
request for live data is declined), which training/eval_set.py checks. Every 5th wording of an intent
is held out (`tool_words.pick`). A request gets one reply, chosen by a hash of its text, so the mapping
is deterministic: a model sure of its answer commits more tokens per forward pass.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from training.templates import BOOKS, FOODS, JOKES, MOVIES, SONGS
from training.tool_words import pick, transcript

BREAKFASTS = [
    "porridge with fruit", "scrambled eggs on toast", "yogurt with granola",
    "a banana and peanut butter toast",
    "pancakes", "an omelette", "a smoothie", "avocado toast",
]  # fmt: skip
ACTIVITIES = [
    "go for a short walk", "call a friend", "try a new recipe", "read a chapter of a book", "do a puzzle",
    "learn a few words of a new language", "tidy one drawer", "draw something", "listen to a podcast",
    "write a short letter",
]  # fmt: skip
CITY_SIGHTS = {  # city -> two sights a visitor is often told about
    "Paris": ("the Eiffel Tower", "the Louvre"), "London": ("the British Museum", "a walk along the Thames"),
    "Rome": ("the Colosseum", "the Trevi Fountain"), "Tokyo": ("the Shibuya crossing", "the Senso-ji temple"),
    "New York": ("Central Park", "the Statue of Liberty"),
    "Berlin": ("the Brandenburg Gate", "the Berlin Wall"),
    "Barcelona": ("the Sagrada Familia", "Park Guell"), "Amsterdam": ("the canals", "the Van Gogh Museum"),
    "Sydney": ("the Opera House", "Bondi Beach"), "Madrid": ("the Prado museum", "Retiro Park"),
    "Lisbon": ("the Belem Tower", "a ride on tram 28"),
    "Prague": ("the Charles Bridge", "the Old Town Square"),
    "Vienna": ("Schonbrunn Palace", "a coffee house"), "Istanbul": ("the Hagia Sophia", "the Grand Bazaar"),
    "Athens": ("the Acropolis", "the Plaka district"),
    "Cairo": ("the Pyramids of Giza", "the Egyptian Museum"),
    "San Francisco": ("the Golden Gate Bridge", "a cable car ride"),
    "Chicago": ("Millennium Park", "the lakefront"),
    "Toronto": ("the CN Tower", "Kensington Market"),
    "Kyoto": ("the Fushimi Inari shrine", "the bamboo grove"),
    "Venice": ("a gondola ride", "St Mark's Square"), "Dublin": ("Trinity College", "Temple Bar"),
    "Edinburgh": ("the castle", "the Royal Mile"),
    "Rio de Janeiro": ("Christ the Redeemer", "Copacabana beach"),
    "Bangkok": ("the Grand Palace", "a floating market"),
    "Seoul": ("Gyeongbokgung Palace", "the night markets"),
    "Copenhagen": ("Tivoli Gardens", "Nyhavn harbor"), "Budapest": ("the thermal baths", "the Parliament"),
}  # fmt: skip
BAD_NEWS = [
    "I failed my exam", "My dog died", "I lost my job", "I had a terrible day",
    "My girlfriend broke up with me",
    "My boyfriend left me", "I'm feeling sick", "My grandmother passed away", "I didn't get the job",
    "My car broke down", "I had a fight with my best friend", "I missed my flight", "My cat is sick",
    "I got some bad news today", "Work was awful today", "I broke my arm",
]  # fmt: skip
GOOD_NEWS = [
    "I got the job", "I passed my driving test", "We're having a baby", "I got engaged", "I passed my exam",
    "I finished my first marathon", "I got a promotion", "My team won the final", "I bought my first house",
    "I graduated today", "I got into university", "My sister had a baby", "I finally finished my project",
    "It's my birthday today", "I got a new puppy", "We won the game",
]  # fmt: skip
# The kind of client function that would serve a request (training/tool_catalog.py domains): with one
# on offer, the request is not declined (training/tool_data.py).
LIVE_DOMAINS = {
    "the weather": "weather", "the forecast": "weather", "the news": "news", "sports scores": "sport",
    "the stock market": "stocks", "live prices": "stocks", "the traffic": "maps", "opening hours": "maps",
    "the TV guide": "movies", "live timetables": "travel", "flight times": "travel",
}  # fmt: skip
TASK_DOMAINS = {
    "call": "phone", "text": "messages", "lights": "home", "pizza": "food", "flight": "travel",
    "email": "email",
    "playlist": "music", "door": "home", "heat": "home", "groceries": "shopping", "bills": "payments",
    "photo": "phone", "messages": "messages", "car": "car",
}  # fmt: skip
LIVE = [  # (a request for live data, what it is)
    ("What's the weather like", "the weather"), ("Is it going to rain today", "the weather"),
    ("What's the forecast for tomorrow", "the forecast"), ("Do I need an umbrella today", "the weather"),
    ("What's in the news today", "the news"), ("Tell me the latest headlines", "the news"),
    ("Who won the game last night", "sports scores"), ("What was the score of the match", "sports scores"),
    ("How are the stocks doing", "the stock market"), ("What's the price of bitcoin", "live prices"),
    ("How's the traffic on my way to work", "the traffic"), ("Is the supermarket open now", "opening hours"),
    ("What's on TV tonight", "the TV guide"), ("When does the next bus come", "live timetables"),
    ("How hot is it outside", "the weather"), ("Is my flight on time", "flight times"),
]  # fmt: skip
NO_ACCESS = [  # things no built-in tool does
    "call my mom", "send a text to Sam", "turn on the lights", "order a pizza", "book a flight",
    "check my email",
    "play my playlist", "lock the front door", "turn up the heat", "buy groceries online", "pay my bills",
    "take a photo", "read my messages", "start the car",
]  # fmt: skip
GREET = ["hi", "hello", "hey", "good morning", "good evening", "good afternoon"]
REFUSE = ["can't", "cannot", "don't have", "no access", "not able", "unable"]


@dataclass(frozen=True)
class Intent:
    name: str
    asks: list[str]  # request wordings; slots in braces
    replies: list[str]
    expect: list[str]  # a useful reply contains one of these (slots filled); empty: see `expect_of`
    slot: str = ""  # the word list the slot {s} draws from (SLOT_LISTS), if any


SLOT_LISTS = {
    "city": list(CITY_SIGHTS),
    "bad": BAD_NEWS,
    "good": GOOD_NEWS,
    "live": [q for q, _ in LIVE],
    "task": NO_ACCESS,
}

INTENTS = [
    Intent("greeting", [
        "Hi", "Hello", "Hey there", "Good morning", "Hi there", "Hello there", "Hey", "Good evening",
        "Good afternoon", "Hey, are you there", "Hello, can you hear me", "Morning", "Hi assistant",
        "Hey, good to see you", "Hiya",
    ], ["Hi! How can I help?", "Hello! What can I do for you?", "Hey there! What do you need?"], GREET),
    Intent("farewell", [
        "Bye", "Goodbye", "See you later", "Good night", "Talk to you later", "I have to go now",
        "That's all for now", "Catch you later", "Bye for now", "I'm going to bed", "See you tomorrow",
        "I'm off now", "Gotta go", "Have a good one", "Later",
    ], ["Goodbye! Have a great day.", "See you later! Take care.", "Bye for now!", "Good night! Sleep well."],
        ["bye", "see you", "take care", "good night", "sleep well"]),
    Intent("thanks", [
        "Thanks", "Thank you", "Thank you so much", "Thanks a lot", "Thanks, that helps", "Great, thanks",
        "Cheers", "I appreciate it", "Thanks for your help", "That was helpful, thank you", "Perfect, thanks",
        "Thanks a million", "Much appreciated", "You're the best, thanks", "Nice one, thank you",
    ], ["You're welcome!", "Happy to help!", "Anytime!", "My pleasure!"],
        ["welcome", "happy to help", "anytime", "pleasure", "glad"]),
    Intent("how_are_you", [
        "How are you", "How are you doing", "How's it going", "How is your day going", "How have you been",
        "Are you doing okay", "How do you feel today", "How's your day been", "You doing alright",
        "How are things", "How are you today", "Everything good with you", "How's life",
        "Hi, how are you", "How are you feeling",
    ], ["I'm doing well, thanks! How can I help?", "Pretty good, thanks for asking. What can I do for you?",
        "All good here! What do you need?"], ["well", "good", "great", "fine"]),
    Intent("who_are_you", [
        "Who are you", "What are you", "What's your name", "Are you a robot", "Tell me about yourself",
        "Are you an AI", "Are you human", "Who am I talking to", "Introduce yourself", "Who made you",
    ], ["I'm a small voice assistant that runs right here on this computer.",
        "I'm a voice assistant, a small AI running on this machine."], ["assistant", "AI"]),
    Intent("what_can_you_do", [
        "What can you do", "What can you help me with", "How can you help me", "What are you good at",
        "What do you do", "What can I ask you", "Help", "What are your skills", "What can you do for me",
        "What kind of things can you do",
    ], [
        "I can tell the time, do sums and conversions, set timers and reminders, "
        "and answer simple questions.",
        "I can set timers and reminders, tell the time, work out sums, convert units and chat."],
        ["timer", "time", "sums", "convert"]),
    Intent("movie", [
        "Can you recommend a good movie", "What movie should I watch", "Suggest a film for tonight",
        "Any good movies to watch", "What should we watch tonight", "Recommend a film",
        "I want to watch a movie, any ideas", "Give me a movie to watch", "What's a good film",
        "Pick a movie for me", "Any film recommendations",
    ], ["How about {movie}? It's a lot of fun.", "I'd suggest {movie}.", "You could try {movie}."], MOVIES),
    Intent("song", [
        "Recommend a song", "What should I listen to", "Suggest some music", "Give me a song to listen to",
        "Any song recommendations", "What's a good song", "Pick a song for me", "I need a good song",
        "What music should I put on", "Suggest a song",
    ], ["Try {song}.", "How about {song}?", "I'd suggest {song}."], SONGS),
    Intent("book", [
        "Recommend a book", "What should I read", "Suggest a good book", "Any book recommendations",
        "What's a good book", "Give me something to read", "Pick a book for me", "I need a new book to read",
        "What book should I read next", "Suggest something to read",
    ], ["You could read {book}.", "How about {book}?", "I'd suggest {book}."], BOOKS),
    Intent("dinner", [
        "What should I eat for dinner", "What should I cook tonight", "Suggest a dish", "Any dinner ideas",
        "What should I make for dinner", "Give me a dinner idea", "I don't know what to cook",
        "What's a good dinner", "Suggest something for dinner", "What can I have for dinner",
    ], ["How about {food}?", "You could make {food}.", "Try {food} tonight."], FOODS),
    Intent("breakfast", [
        "What should I have for breakfast", "Any breakfast ideas", "Suggest a breakfast",
        "What's a good breakfast", "What can I eat this morning", "Give me a breakfast idea",
        "What should I eat for breakfast", "Breakfast ideas please", "What's quick for breakfast",
        "Suggest something for breakfast",
    ], ["How about {breakfast}?", "You could have {breakfast}.", "Try {breakfast}."], BREAKFASTS),
    Intent("bored", [
        "I'm bored", "What should I do", "I'm so bored", "Give me something to do",
        "What can I do when I'm bored", "Any ideas for something to do", "I have nothing to do",
        "Suggest something fun to do", "I need something to do", "What's something fun to do",
    ], ["You could {activity}.", "How about you {activity}?", "Why not {activity}?"], ACTIVITIES),
    Intent("plan_morning", [
        "Can you help me plan my morning", "Help me plan my day", "How should I start my day",
        "Help me plan my morning", "Any tips for a good morning", "How do I make the most of my morning",
        "Plan my morning", "What's a good morning routine", "How should I plan my day",
        "Give me a plan for today",
    ], ["Sure. Have a glass of water and breakfast, then do your most important task first.",
        "Start with breakfast, make a short list of three tasks, and do the hardest one first."],
        ["breakfast", "task", "list"]),
    Intent("trip", [
        "I'm going to {s}, any ideas", "What should I do in {s}", "Ideas for a trip to {s}",
        "What should I see in {s}", "I'm visiting {s} next week, what should I do", "Plan a day in {s}",
        "What's worth seeing in {s}", "Any tips for {s}", "I'm traveling to {s}, what should I see",
        "What can I do in {s}",
    ], ["In {s}, you could see {sight1} and {sight2}.", "Don't miss {sight1} and {sight2} in {s}."],
        [], "city"),
    Intent("comfort", [
        "{s}", "{s}.", "Ugh, {s_low}", "So, {s_low}", "{s}. I feel awful", "{s} and I'm sad",
        "I need to tell someone, {s_low}", "{s}, what do I do", "Well, {s_low}", "Sadly, {s_low}",
    ], ["I'm so sorry to hear that. That sounds really hard.", "I'm sorry. Be kind to yourself today.",
        "That's tough, I'm sorry. I'm here if you want to talk."], ["sorry"], "bad"),
    Intent("congrats", [
        "{s}", "{s}!", "Guess what, {s_low}", "Great news, {s_low}", "{s}, I'm so happy",
        "I have news, {s_low}", "{s} today", "Yay, {s_low}", "Good news, {s_low}", "Finally, {s_low}",
    ], ["Congratulations! That's wonderful news.", "That's great news, congratulations!",
        "Well done! I'm so happy for you."], ["congrat", "well done", "great news"], "good"),
    Intent("cant_sleep", [
        "I can't sleep", "I can't fall asleep", "I'm having trouble sleeping", "I keep waking up at night",
        "Help me fall asleep", "I'm wide awake and it's late", "How can I sleep better", "I have insomnia",
        "Any tips for falling asleep", "I can't get to sleep",
    ], ["Sorry to hear that. Try slow deep breaths and put your phone away.",
        "Try a dark, cool room and slow breathing, and keep screens away for a while."],
        ["breath", "phone", "screen", "room"]),
    Intent("stressed", [
        "I'm stressed", "I'm so stressed out", "I'm anxious", "I feel overwhelmed", "I'm worried about work",
        "I'm really nervous", "Everything is too much", "I'm under a lot of pressure", "I'm freaking out",
        "I feel anxious today",
    ], ["I'm sorry. Take a slow breath, and try one small thing at a time.",
        "That sounds hard. A short walk and a few deep breaths can help."], ["breath", "sorry", "walk"]),
    Intent("joke", [
        "Tell me a joke", "Do you know any jokes", "Make me laugh", "Say something funny", "Got any jokes",
        "I need a joke", "Tell me something funny", "Cheer me up with a joke", "Know any good jokes",
        "Joke please",
    ], ["{joke}", "Here's one. {joke}"], ["?"]),
    Intent("live_data", [
        "{s}", "{s}?", "Can you tell me {s_low}", "Do you know {s_low}", "Hey, {s_low}?", "Quick, {s_low}?",
        "Check {s_low}", "I need to know {s_low}", "Please tell me {s_low}", "Any idea {s_low}?",
    ], ["Sorry, I can't check {what}: I'm not connected to the internet.",
        "I don't have live data, so I can't tell you {what}. An app on your phone can."], REFUSE, "live"),
    Intent("no_access", [
        "Can you {s}", "Please {s}", "I need you to {s}", "Could you {s} for me", "{S}, please",
        "Can you help me {s}", "{S}", "Would you {s}", "Go ahead and {s}", "Hey, {s}",
    ], ["Sorry, I can't {s_you}: I have no access to that.",
    "I'm not able to {s_you}, sorry."], REFUSE, "task"),
]  # fmt: skip


@dataclass(frozen=True)
class IntentQA:
    user: str
    reply: str
    expect: list[str]  # a useful reply contains one of these (case-insensitive)
    intent: str
    group: str
    domain: str = ""  # a decline's kind of client function (LIVE_DOMAINS, TASK_DOMAINS); "" otherwise


def stable_index(text: str, n: int) -> int:
    """The same choice for the same text in every run (Python's hash() is salted per process)."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % n


def draw(intent: Intent, rng: random.Random, held: bool) -> IntentQA:
    slots, expect = {}, list(intent.expect)
    if intent.slot:
        s = rng.choice(SLOT_LISTS[intent.slot])
        low = s if s.startswith(("I ", "I'")) else s[0].lower() + s[1:]
        you = " ".join({"my": "your", "me": "you"}.get(w, w) for w in s.split())
        slots |= {"s": s, "S": s[0].upper() + s[1:], "s_low": low, "s_you": you}
        if intent.slot == "city":
            slots["sight1"], slots["sight2"] = CITY_SIGHTS[s]
            expect = [s, *CITY_SIGHTS[s]]
        slots["what"] = dict(LIVE).get(s, "")
    user = transcript(pick(rng, intent.asks, held).format(**slots), rng)
    key = user.lower().rstrip(".?!")
    # Suggestions too are chosen by the request's text: one answer per request, as for the reply wording.
    for name, items in SUGGESTIONS.items():
        slots[name] = items[stable_index(name + key, len(items))]
    reply = intent.replies[stable_index(key, len(intent.replies))].format(**slots)
    domain = ""
    if intent.slot == "live":
        domain = LIVE_DOMAINS[slots["what"]]
    elif intent.slot == "task":
        domain = next(d for word, d in TASK_DOMAINS.items() if word in slots["s"])
    return IntentQA(user, reply, expect, intent.name, f"intents:{intent.name}:{key}", domain)


SUGGESTIONS = {
    "movie": MOVIES,
    "song": SONGS,
    "book": BOOKS,
    "food": FOODS,
    "breakfast": BREAKFASTS,
    "activity": ACTIVITIES,
    "joke": JOKES,
}


def intent_exchanges(rng: random.Random, held: bool = False, per_intent: int = 300) -> list[IntentQA]:
    """`per_intent` rows per intent (duplicates kept: they weigh common requests), from the training
    wordings, or from the held-out ones with `held`."""
    return [draw(intent, rng, held) for intent in INTENTS for _ in range(per_intent)]
