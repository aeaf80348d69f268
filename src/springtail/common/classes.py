"""The nine classes of the Collembola challenge, in label order."""

# (code, meaning); the list index is the integer label used everywhere.
CLASSES: tuple[tuple[str, str], ...] = (
    ("AUTRE", "other taxa / not one of the seven"),
    ("Cer", "Ceratophysella"),
    ("CRY_THE", "Cryptopygus thermophilus"),
    ("HYP_MAN", "Hypogastrura manubrialis"),
    ("ISO_MIN", "Isotomiella minor"),
    ("LEP", "Lepidocyrtus"),
    ("MET_AFF", "Metaphorura affinis"),
    ("PAR_NOT", "Parisotoma notabilis"),
    ("FOND", "background (no specimen)"),
)
CODES: tuple[str, ...] = tuple(code for code, _ in CLASSES)
N_CLASSES = len(CLASSES)
BACKGROUND = 8  # FOND: almost never voted, frequent among test crops
N_EXPERTS = 4
PROB_COLUMNS: tuple[str, ...] = tuple(f"p{k}" for k in range(N_CLASSES))  # class probabilities in tables
