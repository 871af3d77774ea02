package recsys.flink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

/**
 * Per item and pair kind (co-view, co-purchase): how often each partner item was paired
 * with it, and the top partners by count (ties by id).
 *
 * <p>Counts are exact while an item has at most {@code capacity} partners of a kind; beyond
 * that the Space-Saving rule keeps the heaviest (the least counted partners make room and a
 * new one inherits their count), so the top partners stay right for skewed data. Counts only
 * grow, so the top list is kept up to date on each increment (O(top)), not sorted on each
 * read. {@code n} counts the pairs added; {@code at} / {@code produced} are the newest event
 * and produce times of the user rows the pairs came from.
 */
final class PairState {
    final HashMap<String, long[]>[] partners;
    final ArrayList<String>[] top;
    long n;
    long at = Long.MIN_VALUE;
    long produced = Long.MIN_VALUE;

    @SuppressWarnings({"unchecked", "rawtypes"})
    PairState(int kinds) {
        partners = new HashMap[kinds];
        top = new ArrayList[kinds];
        for (int k = 0; k < kinds; k++) {
            partners[k] = new HashMap<>();
            top[k] = new ArrayList<>();
        }
    }

    /** Adds one pair per partner, of kind {@code kind}. */
    void add(int kind, String[] with, long ts, long producedMs, int capacity, int topSize) {
        at = Math.max(at, ts);
        produced = Math.max(produced, producedMs);
        for (String partner : with) {
            n++;
            add(kind, partner, capacity, topSize);
        }
    }

    /** Adds one pair. */
    void add(int kind, String partner, long ts, long producedMs, int capacity, int topSize) {
        at = Math.max(at, ts);
        produced = Math.max(produced, producedMs);
        n++;
        add(kind, partner, capacity, topSize);
    }

    private void add(int kind, String partner, int capacity, int topSize) {
        HashMap<String, long[]> counts = partners[kind];
        long[] count = counts.get(partner);
        if (count != null) {
            count[0]++;
        } else if (counts.size() < capacity) {
            counts.put(partner, new long[] {1});
        } else {
            counts.put(partner, new long[] {evictLightest(kind) + 1});
        }
        promote(top[kind], counts, partner, topSize);
    }

    /**
     * Makes room: drops every partner with the lowest count (at least one) and returns that
     * count, which a newcomer inherits (Space-Saving). Dropping them all at once keeps the
     * cost per new partner constant on average.
     */
    private long evictLightest(int kind) {
        HashMap<String, long[]> counts = partners[kind];
        long min = Long.MAX_VALUE;
        for (long[] c : counts.values()) {
            min = Math.min(min, c[0]);
        }
        long floor = min;
        counts.values().removeIf(c -> c[0] == floor);
        top[kind].removeIf(p -> !counts.containsKey(p));
        return floor;
    }

    /** Moves a partner whose count grew to its place in the top list (if it belongs). */
    private static void promote(ArrayList<String> top, HashMap<String, long[]> counts,
                                String partner, int topSize) {
        int at = top.indexOf(partner);
        if (at < 0) {
            if (top.size() == topSize) {
                if (!before(counts, partner, top.get(topSize - 1))) {
                    return;
                }
                top.remove(topSize - 1);
            }
            top.add(partner);
            at = top.size() - 1;
        }
        while (at > 0 && before(counts, partner, top.get(at - 1))) {
            Collections.swap(top, at, at - 1);
            at--;
        }
    }

    private static boolean before(HashMap<String, long[]> counts, String a, String b) {
        long ca = counts.get(a)[0];
        long cb = counts.get(b)[0];
        return ca != cb ? ca > cb : a.compareTo(b) < 0;
    }

    long count(int kind, String partner) {
        return partners[kind].get(partner)[0];
    }

    PairState copy() {
        PairState c = new PairState(partners.length);
        for (int k = 0; k < partners.length; k++) {
            for (Map.Entry<String, long[]> e : partners[k].entrySet()) {
                c.partners[k].put(e.getKey(), e.getValue().clone());
            }
            c.top[k].addAll(top[k]);
        }
        c.n = n;
        c.at = at;
        c.produced = produced;
        return c;
    }
}
