#!/bin/sh
# The layering check: each module's object may refer only to the modules named
# here (docs/architecture.md, "Layers of the C core"). Usage: layers.sh OBJDIR
obj=${1:-build/obj}
fail=0
allow() {
    m=$1
    shift
    for callee in $(nm -u "$obj/$m.o" | awk '{print $2}' | grep '^sako__' |
                    sed -E 's/^sako__([a-z]+).*/\1/' | sort -u); do
        case " $* " in
        *" $callee "*) ;;
        *) echo "layers: $m.c calls sako__${callee}_* (not in its list here)"; fail=1 ;;
        esac
    done
}
allow error
allow decay
allow checksum
allow idmap error
allow store error checksum
allow users error idmap store
allow personal error decay interactions
allow interactions error
allow model error idmap beta rng demand decay
allow demand error idmap store model decay
allow domains error idmap pruned rng beta
allow catalog error idmap store model domains personal demand replica
allow snapshot error decay
allow retrain error idmap store model users domains demand personal snapshot decay policy logstate gate kill factors replica
allow logstate error idmap store personal decay
allow compact error store retrain logstate kill
allow gate error model
allow versions error store model retrain policy
allow policy error store
allow personal_rank error idmap personal demand beta rng factors factor
allow factors error idmap store interactions factor mf
allow factor_index error
allow recommend error idmap pruned rng beta personal store
allow events error idmap store model users domains catalog retrain personal snapshot policy replica
allow replica error store
allow backup error store
allow verify error store
allow killpoint
allow mf_check error
allow mf_solve error
allow mf_gram error mf
allow mf_als error mf rng
allow mf_foldin error mf
[ $fail = 0 ] && echo "layers: ok (store.o refers to: $(nm -u "$obj/store.o" | awk '{print $2}' | grep '^sako__' | tr '\n' ' '))"
exit $fail
