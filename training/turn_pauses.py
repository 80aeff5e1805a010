"""Thinking pauses where a person is plainly not done, for the end-of-turn evaluation (bench/turn_eval.py).

Each entry is a `Pause`: the whole utterance with a comma where the speaker pauses (so piper and espeak-ng
keep the voice's unfinished tone there), how many words come before the pause, and what kind of pause it
is (issue 29):
  clause      after a subordinate or conditional clause ("When I get home, ...")
  list        inside a list ("Add apples, bananas, ...")
  complement  after a word that needs a complement, modal verbs included ("We should probably, ...")
  filler      after a filler ("Um, ...", "Set a timer for, um, ...")
  greeting    after a greeting that a request follows ("Hi, ..."); a greeting alone is also a whole
              turn, so this kind is reported apart from the four that are plainly unfinished
FINISHED_SHORT are finished short turns, the counterweight: they must still be answered quickly. Some end
the way an unfinished turn might ("Call me when you can.").

The split is by wording and fixed here, not drawn: held-out entries share no sentence with the train ones
or with training.turn_sentences (tests/test_utterance_end.py checks it), and training.utterance_end leaves
every sentence of both files out of its data, so the model never saw one of them whole.
"""

from __future__ import annotations

from dataclasses import dataclass

PAUSE_KINDS = ("clause", "list", "complement", "filler", "greeting")
PLAINLY_UNFINISHED = ("clause", "list", "complement", "filler")  # no reply may start in these pauses


@dataclass(frozen=True)
class Pause:
    text: str  # the whole utterance, a comma at the pause
    words: int  # words before the pause
    kind: str  # one of PAUSE_KINDS


def _p(kind: str, rows: list[tuple[str, int]]) -> list[Pause]:
    return [Pause(text, n, kind) for text, n in rows]


TRAIN: list[Pause] = [
    *_p(
        "clause",
        [
            ("When I get home, remind me to feed the cat.", 4),
            ("If it rains tomorrow, cancel my morning run.", 4),
            ("Because the train is late, tell Anna I will be there at ten.", 5),
            ("Before you start the music, turn down the lights.", 5),
            ("While the pasta is cooking, set a timer for eight minutes.", 5),
            ("As soon as the meeting ends, send me the notes.", 6),
            ("Unless it gets colder, leave the heating off.", 4),
            ("After I finish this email, remind me to stretch.", 5),
        ],
    ),
    *_p(
        "list",
        [
            ("Add apples, bananas, and yogurt to my shopping list.", 3),
            ("I need eggs, butter, and flour for the cake.", 4),
            ("Play something by the Beatles, Queen, or Abba.", 6),
            ("Remind me to buy stamps, envelopes, and tape.", 6),
            ("We visited Rome, Florence, and Venice last summer.", 4),
            ("Turn off the lights in the kitchen, the hall, and the garage.", 9),
        ],
    ),
    *_p(
        "complement",
        [
            ("I think we could, go to the cinema tonight.", 4),
            ("Please remind me to, water the plants.", 4),
            ("Could you tell me, how long the drive takes?", 4),
            ("I would like, a cup of coffee.", 3),
            ("The best time to call is, after lunch.", 6),
            ("You might want to, bring an umbrella.", 4),
            ("Let us meet at, the station at noon.", 4),
            ("I have to, pick up the kids at four.", 3),
        ],
    ),
    *_p(
        "filler",
        [
            ("Um, what is the weather tomorrow?", 1),
            ("So, I was thinking about dinner.", 1),
            ("Set a timer for, um, twenty minutes.", 5),
            ("Well, um, can you play some jazz?", 2),
            ("I want, uh, a song by Adele.", 3),
            ("Uh, turn the lights off please.", 1),
        ],
    ),
    *_p(
        "greeting",
        [
            ("Hi, can you set an alarm for seven?", 1),
            ("Hello, what is on my calendar today?", 1),
            ("Hey, play some music please.", 1),
        ],
    ),
]
HELD_OUT: list[Pause] = [
    *_p(
        "clause",
        [
            ("If you see him, tell him I said hello.", 4),
            ("When the package arrives, let me know.", 4),
            ("Since you are awake, could you read me the news?", 4),
            ("Once the oven is hot, start the timer.", 5),
            ("Although it is late, I would like some music.", 4),
            ("Until the baby falls asleep, keep the volume low.", 5),
            ("In case I forget, remind me about the dentist.", 4),
            ("Whenever my sister calls, put her straight through.", 4),
        ],
    ),
    *_p(
        "list",
        [
            ("Put milk, cheese, and bread on the list.", 3),
            ("Call Tom, Lisa, and my brother about dinner.", 3),
            ("I want to see the museum, the park, and the old bridge.", 8),
            ("Pack the charger, my glasses, and a warm jacket.", 5),
            ("Set alarms for six, seven, and eight tomorrow.", 5),
            ("Order rice, noodles, and some spring rolls.", 3),
        ],
    ),
    *_p(
        "complement",
        [
            ("We should probably, leave at six.", 3),
            ("Can you send it to, my sister?", 5),
            ("I really need, some help with dinner.", 3),
            ("Maybe we can, watch a movie later.", 3),
            ("It would be great if you could, turn on the fan.", 7),
            ("My favourite song is, the one about the rain.", 4),
            ("Tell me about, the history of Rome.", 3),
            ("I was going to, ask you something.", 4),
        ],
    ),
    *_p(
        "filler",
        [
            ("Um, how far is the airport?", 1),
            ("So, what should I cook tonight?", 1),
            ("Play, um, something relaxing.", 2),
            ("Uh, can you call my dad?", 1),
            ("So, um, I need a new alarm.", 2),
            ("Remind me, uh, to buy milk.", 3),
        ],
    ),
    *_p(
        "greeting",
        [
            ("Hi, what is the weather like?", 1),
            ("Hello there, how are you doing today?", 2),
            ("Good morning, what is the news?", 2),
            ("Hey, tell me a joke.", 1),
        ],
    ),
]
FINISHED_SHORT_TRAIN: list[str] = [
    "What time is it?",
    "Yes, go ahead.",
    "That's perfect.",
    "Call me when you can.",
    "I think so.",
    "Not right now.",
    "Do it if you can.",
    "Turn it up a bit.",
    "Thanks so much!",
    "Let me know.",
]
FINISHED_SHORT_HELD_OUT: list[str] = [
    "Thanks a lot!",
    "Where am I?",
    "Sure, why not.",
    "Great, thank you!",
    "Wake me when it is over.",
    "I guess so.",
    "See you later.",
    "Make it louder.",
    "Why not?",
    "Is it cold outside?",
]
