# bash completion for geodns                                 -*- shell-script -*-
_geodns() {
	local cur prev cmd
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W 'serve check explain ctl drill cluster import version help' -- "$cur"))
		return
	fi
	cmd=${COMP_WORDS[1]}
	case $prev in
	--config|--geoip|--api-token-file|--token-file)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--zones|--state-dir|--import-dir)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--log-format)
		COMPREPLY=($(compgen -W 'text json' -- "$cur")); return ;;
	--http)
		COMPREPLY=($(compgen -W 'off 127.0.0.1:8053' -- "$cur")); return ;;
	--listen|--probe-allow|--client|--api|--site|--clients|--duration|--limit|--origin|--name|--dns|--token|--reason|--endpoint)
		return ;;
	esac
	local opts
	case $cmd in
	serve) opts='--config --zones --listen --geoip --http --api-token-file --state-dir --probe-allow --log-format' ;;
	check) opts='--config --zones --import-dir' ;;
	explain) opts='--zones --geoip --api --client' ;;
	drill) opts='--api --site --clients --name --duration --limit --dns --token' ;;
	ctl)
		if [[ $COMP_CWORD -eq 2 ]]; then
			COMPREPLY=($(compgen -W 'status drain undrain force-up force-down dial explain --api --token-file' -- "$cur")); return
		fi
		opts='--api --token-file --reason --endpoint --client' ;;
	cluster)
		if [[ $COMP_CWORD -eq 2 ]]; then
			COMPREPLY=($(compgen -W 'status' -- "$cur")); return
		fi
		opts='--api --json' ;;
	import) opts='--origin' ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ $cmd == check || $cmd == import ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _geodns geodns
