# bash completion for bgmon and bgmon-*: flags per command, job names from $BGMON_HOME.
# Use: source /path/to/bgmon.bash   (e.g. from ~/.bashrc)

_bgmon_jobs() {
  local f
  for f in "${BGMON_HOME:-$HOME/.bgmon}"/jobs/*.json; do
    [ -e "$f" ] || continue
    f=${f##*/}
    printf '%s\n' "${f%.json}"
  done
}

_bgmon_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=${COMP_WORDS[0]##*/} first=1 i
  COMPREPLY=()
  if [[ $cmd == bgmon ]]; then
    if ((COMP_CWORD == 1)); then
      COMPREPLY=($(compgen -W "start status stop signal tail wait rm" -- "$cur"))
      return
    fi
    cmd=bgmon-${COMP_WORDS[1]}
    first=2
  fi
  case $prev in
    --after) COMPREPLY=($(compgen -W "$(_bgmon_jobs)" -- "$cur")); return ;;
    --status) COMPREPLY=($(compgen -W "QUEUED RUNNING PAUSED SUCCEEDED FAILED STOPPED CANCELLED DEAD STALE" -- "$cur")); return ;;
    --signal) COMPREPLY=($(compgen -W "TERM INT HUP KILL QUIT USR1 USR2" -- "$cur")); return ;;
    --cwd) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --name | --env | --grace | --timeout | --older-than | -n) return ;;
  esac
  local flags
  case $cmd in
    bgmon-start)
      # after "--" or the command word, everything belongs to the job's command
      for ((i = first; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -- ]] && { COMPREPLY=($(compgen -c -- "$cur")); return; }
      done
      flags="--name --cwd --env --after --help --version" ;;
    bgmon-status) flags="--status --json --table --help --version" ;;
    bgmon-stop) flags="--signal --grace --help --version" ;;
    bgmon-signal)
      # the last word is the signal: offer signals once a name is given
      if [[ $cur != -* ]] && ((COMP_CWORD > first)); then
        COMPREPLY=($(compgen -W "HUP USR1 USR2 STOP TSTP CONT INT TERM $(_bgmon_jobs)" -- "$cur"))
        return
      fi
      flags="--help --version" ;;
    bgmon-tail) flags="-n -f --follow --json --help --version" ;;
    bgmon-wait) flags="--timeout --any --help --version" ;;
    bgmon-rm) flags="--finished --older-than --stop --grace --help --version" ;;
    *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ $cmd == bgmon-start ]]; then
    COMPREPLY=($(compgen -c -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_bgmon_jobs)" -- "$cur"))
  fi
}

complete -F _bgmon_complete bgmon bgmon-start bgmon-status bgmon-stop bgmon-signal bgmon-tail bgmon-wait bgmon-rm
