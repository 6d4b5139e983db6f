# shellcheck shell=bash disable=SC2207 # COMPREPLY=($(compgen ...)) is the completion idiom
# bash completion for shoal(1): subcommands, their flags, and the values
# some flags take. Installed as share/bash-completion/completions/shoal.
# The flag lists follow each subcommand's getopt in apps/shoal/.

_shoal_ssh_options="Port= User= IdentityFile= IdentityAgent= KexAlgorithms= Ciphers= MACs=
HostKeyAlgorithms= StrictHostKeyChecking= UserKnownHostsFile= GlobalKnownHostsFile= HostKeyAlias=
HashKnownHosts= BatchMode= ConnectTimeout= ConnectionAttempts= ServerAliveInterval=
ServerAliveCountMax= PasswordAuthentication= PubkeyAuthentication= KbdInteractiveAuthentication=
RekeyLimit= LogLevel= Compression="

_shoal_serve_options="Port= ListenAddress= HostKey= AuthorizedKeysFile= AuthorizedKeysCommand=
AuthorizedKeysCommandUser= StrictModes= PasswordFile= PasswordAuthentication= PubkeyAuthentication=
KbdInteractiveAuthentication= AuthenticationMethods= PermitRootLogin= MaxAuthTries= LoginGraceTime=
MaxStartups= MaxSessions= PerSourceMaxStartups= PerSourceNetBlockSize= PerSourcePenalties=
PerSourcePenaltyExemptList= Subsystem= AcceptEnv= ForceCommand= CommandPolicy= AllowCommands=
GitRoot= LogLevel="

_shoal_hosts()
{
    if declare -F _known_hosts_real >/dev/null; then
        _known_hosts_real -a -- "$cur"
    else
        COMPREPLY=($(compgen -A hostname -- "$cur"))
    fi
}

_shoal()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion -n = || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local cmds="exec run put agent serve help"
    if [ "$cword" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
        return
    fi

    local sub=${words[1]} flags="" host_opts
    host_opts="-H -w -x -h -l -p -i -o -t -m --max-parallel --threads --no-progress --help --version"
    case $sub in
        exec) flags="-p -l -i -c -m -o -n -v -q -W --help --version" ;;
        run) flags="$host_opts --json --stream --output-cap --stdin -I" ;;
        put) flags="$host_opts --mode --via --verify --inplace --rate --host-rate --clean-temp --older-than" ;;
        agent) flags="-i -l -c -m -d -o --threads --help --version" ;;
        serve) flags="-f -p -h -o -d --help --version" ;;
        *) return ;;
    esac

    # Values of the flags that take one.
    case $sub:$prev in
        *:-i | serve:-f | serve:-h | run:-h | put:-h | run:--stdin)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        serve:-o)
            COMPREPLY=($(compgen -W "$_shoal_serve_options" -- "$cur"))
            compopt -o nospace 2>/dev/null
            return ;;
        *:-o)
            COMPREPLY=($(compgen -W "$_shoal_ssh_options" -- "$cur"))
            compopt -o nospace 2>/dev/null
            return ;;
        put:--via)
            COMPREPLY=($(compgen -W "sftp scp cat" -- "$cur"))
            return ;;
        run:-H | put:-H | run:-w | put:-w | run:-x | put:-x)
            _shoal_hosts
            return ;;
        *:-l)
            COMPREPLY=($(compgen -u -- "$cur"))
            return ;;
        *:-p | *:-c | *:-m | *:-t | *:--max-parallel | *:--threads | *:--output-cap | \
            *:--mode | *:--rate | *:--host-rate | *:--older-than)
            return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    case $sub in
        exec) _shoal_hosts ;;
        put) COMPREPLY=($(compgen -f -- "$cur")) ;;
        run) COMPREPLY=($(compgen -c -- "$cur")) ;;
    esac
}
complete -F _shoal shoal
