/*
 * config.pml - a Promela model of the config update protocol in
 * src/config.c, checked by spin (tests/model/check-config-model.sh).
 *
 * One step here is one atomic access there, named after the "Model step"
 * comments in config.c where it is a CAS: the loads of config_current, of
 * a value word and of a claim, the ticket fetch_add, the claim CAS
 * ("claim"), the check of the claim and the CAS of one value word
 * ("write"), the publication CAS ("publish"). Writer 0 and 1
 * replace the config whole (as cb_open does), writer 2 sets field 0 only
 * (as cb_set_config does), each once; writer 2 may be SIGKILLed at any
 * step (unless). Two fields stand for the three: a mix needs only two.
 * Tickets are small integers (no wrap in so few updates).
 *
 * Checked (assertions, whole state space):
 *  - the slot in force always holds one update's words: every word
 *    carries the ticket config_current names (a monitor, at every state);
 *  - linearizability: what a publication puts in force is the writer's
 *    operation applied to the config in force just before (a ghost copy
 *    that every publication updates), so a partial update never undoes a
 *    field set by an update published before it, and no update is lost;
 *  - with more slots than updates can occupy at once (the default), a
 *    writer never needs the take-it-anyway fallback.
 * -DPUBLISH_STORE, the protocol with a plain store instead of the
 * publication CAS, must violate the linearizability assertion (the model
 * can fail).
 */

#ifndef SLOTS
#define SLOTS 4
#endif
#define W 3
#define F 2

typedef slot_t {
    byte owner;   /* claim: ticket of the update writing the slot */
    byte base;    /* claim: the config_current that update read */
    byte tag[F];  /* value words: ticket that wrote each */
    byte val[F]
};
slot_t slot[SLOTS];
byte current = 1;
byte tickets = 1;
byte logical[F];       /* ghost: the config in force, by publication order */
bool fallback = false; /* ghost: a claim was taken from an update that could still publish */
bool die = false;      /* writer 2 is SIGKILLed */
byte finished = 0;

/* Monitor: the slot in force is whole, at every state. */
proctype whole()
{
end:
    atomic {
        !(slot[current % SLOTS].tag[0] == current && slot[current % SLOTS].tag[1] == current) ->
        assert(fallback)
    }
}

proctype writer(byte id)
{
    byte v, last_v, t, s, f, occupied, cur, c_owner, c_base, w_tag, w_val;
    byte now[F], next[F];
    bool consistent;
    {
        occupied = 0;
retry:  v = current; /* load config_current (acquire) */
        if
        :: v != last_v -> occupied = 0; last_v = v
        :: else -> skip
        fi;
        consistent = true;
        f = 0;
        do
        :: f < F ->
            atomic { /* load one value word */
                now[f] = slot[v % SLOTS].val[f];
                consistent = consistent && slot[v % SLOTS].tag[f] == v;
                f++
            }
        :: else -> break
        od;
        if
        :: id == 2 -> next[0] = 9; next[1] = now[1] /* cb_set_config: field 0 only */
        :: else -> next[0] = id + 1; next[1] = id + 1 /* cb_open: whole */
        fi;
        if
        :: consistent && next[0] == now[0] && next[1] == now[1] -> goto done
        :: else -> skip
        fi;
        atomic { tickets++; t = tickets; s = t % SLOTS }
        atomic { c_owner = slot[s].owner; c_base = slot[s].base } /* load the claim */
        cur = current; /* load config_current */
        if
        :: s == cur % SLOTS -> occupied++; goto retry /* the slot in force */
        :: s != cur % SLOTS && c_base == cur && occupied < SLOTS -> occupied++; goto retry /* may publish */
        :: else -> skip
        fi;
        atomic { /* Model step "claim" */
            if
            :: slot[s].owner == c_owner && slot[s].base == c_base ->
                fallback = fallback || c_base == current;
                slot[s].owner = t;
                slot[s].base = v
            :: else -> occupied++; goto retry
            fi
        }
        f = 0;
        do
        :: f < F ->
            atomic { w_tag = slot[s].tag[f]; w_val = slot[s].val[f] } /* load the word */
            do
            :: slot[s].owner != t -> occupied++; goto retry /* the claim was taken */
            :: else ->
                atomic { /* Model step "write": CAS of one word */
                    if
                    :: slot[s].tag[f] == w_tag && slot[s].val[f] == w_val ->
                        slot[s].tag[f] = t;
                        slot[s].val[f] = next[f];
                        f++;
                        break
                    :: else -> w_tag = slot[s].tag[f]; w_val = slot[s].val[f]
                    fi
                }
            od
        :: else -> break
        od;
        atomic { /* Model step "publish" */
#ifdef PUBLISH_STORE
            if
            :: true ->
#else
            if
            :: current == v ->
#endif
                current = t;
                /* What is now in force is this writer's operation applied
                 * to what was in force just before. */
                if
                :: id == 2 -> logical[0] = 9
                :: else -> logical[0] = id + 1; logical[1] = id + 1
                fi;
                assert(fallback || (slot[s].val[0] == logical[0] && slot[s].val[1] == logical[1]));
                goto done
            :: else -> skip
            fi
        }
        goto retry;
done:   finished++
    } unless { id == 2 && die }
}

init
{
    atomic {
        slot[1].owner = 1;
        slot[1].tag[0] = 1;
        slot[1].tag[1] = 1;
        run whole();
        run writer(0);
        run writer(1);
        run writer(2)
    }
    if
    :: die = true
    :: skip
    fi;
    /* Every update ends (lock-free: a writer retries only because
     * another one published or holds a slot), and none needed the
     * fallback. */
    (finished == W || (die && finished == W - 1)) ->
    assert(!fallback);
    assert(slot[current % SLOTS].val[0] == logical[0] && slot[current % SLOTS].val[1] == logical[1])
}
