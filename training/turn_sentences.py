"""Everyday voice-assistant turns for the end-of-turn evaluation (bench/turn_eval.py).

Each entry is (finished sentence, n): its first n words, spoken alone or cut from the whole, are an
unfinished turn (they end on a preposition, conjunction, article, "to", "and then we", ...). n is None
for sentences too short to break off. Numbers are words, so Whisper's words line up with the text's.

SHORT_TURNS are short turns, which people say to a voice assistant all the time ("Thank you.", "Can
you help me?") and which a judge of written text finds hard: a chat corpus rarely ends a message there.
None of them is one of bench.voice_latency's questions.
"""

REQUESTS: list[tuple[str, int | None]] = [
    ("Set a timer for ten minutes.", 4),
    ("What is the weather like in Paris today?", 6),
    ("Turn off the lights in the living room.", 6),
    ("Thanks.", None),
    ("I want to book a table for two people tonight.", 3),
    ("Can you tell me a short story about a dragon?", 8),
    ("We went to the market and then we bought some bread.", 8),
    ("Remind me to call my mother at six o'clock.", 7),
    ("I will take an umbrella if it starts to rain this afternoon.", 4),
    ("Play some relaxing music please.", 2),
    ("How many days are there in a leap year?", 6),
    ("Send a message to Anna saying I will be late because the train is delayed.", 4),
    ("Good morning.", None),
    ("Add milk, eggs and bread to my shopping list.", 4),
    ("What does the word serendipity mean?", 3),
    ("Wake me up early tomorrow if it is sunny.", 6),
    ("Translate good morning into Spanish.", 4),
    ("Who wrote the novel Pride and Prejudice?", 3),
    ("Is it going to rain this weekend?", 4),
    ("I need to leave early because I have a doctor's appointment.", 6),
    ("Yes, please.", None),
    ("Could you read me the latest news headlines?", 2),
    ("Tell me a joke about cats and dogs.", 7),
    ("Open the front door and switch on the porch light.", 5),
    ("What time does the pharmacy close on Sundays?", 7),
    ("I think I would like to go for a walk.", 6),
    ("Please order a large pizza with mushrooms and olives.", 6),
    ("No, that's all for now.", None),
    ("How do I make a cup of tea?", 7),
    ("Lower the volume a little because the baby is sleeping.", 6),
    ("Show me photos from my trip to Italy.", 5),
    ("My flight leaves at nine, so wake me up at seven.", 5),
    ("What is the capital of Australia?", 5),
    ("Call the restaurant and ask if they have a table.", 4),
    ("I'd like to know how far the moon is from the earth.", 4),
    ("Stop.", None),
    ("Can you help me find a recipe for dinner?", 6),
    ("Put the kettle on and then we can talk about the trip.", 6),
    ("Switch the heating off when everyone has left the house.", 5),
    ("Where is the nearest petrol station?", 3),
    ("Let me know if you need anything else.", 4),
    ("Read my new emails out loud.", 3),
    ("That sounds great, thank you very much.", 4),
    ("I was wondering whether you could recommend a good book.", 4),
    ("Turn the music up, it is too quiet in here.", 7),
    ("Please remind me about the meeting with Sarah on Friday.", 5),
    ("What should I cook for dinner tonight?", 5),
    ("Cancel my alarm for tomorrow morning.", 4),
]
SHORT_TURNS: list[tuple[str, int | None]] = [
    ("Okay.", None),
    ("Can you help me?", 2),
    ("Thank you.", None),
    ("What day is it today?", 3),
    ("Hi there.", None),
    ("Tell me a story.", 3),
    ("No, thanks.", None),
    ("Pause the music.", 2),
    ("How are you?", None),
    ("What is your name?", 3),
    ("Good night.", None),
    ("That was funny.", 2),
    ("Sounds good.", None),
    ("I am hungry.", 2),
    ("Never mind.", None),
    ("Tell me more about it.", 4),
    ("Who are you?", None),
    ("Turn it off.", 2),
]
SENTENCES = REQUESTS + SHORT_TURNS  # bench.turn_eval holds out every third of these
