package recsys.flink;

/**
 * A set of longs (event id hashes) without boxing: open addressing, linear probing,
 * backward-shift deletion. Every entity keeps one for the ids of its live events, so it is
 * touched on each event; a {@code HashSet<Long>} boxes every id and allocates an entry per
 * add.
 */
final class LongSet {
    private static final long EMPTY = 0L;
    private long[] slots;
    private int size;
    private boolean hasZero;

    LongSet() {
        slots = new long[8];
    }

    LongSet(LongSet other) {
        slots = other.slots.clone();
        size = other.size;
        hasZero = other.hasZero;
    }

    boolean contains(long v) {
        if (v == EMPTY) {
            return hasZero;
        }
        int mask = slots.length - 1;
        for (int i = mix(v) & mask; ; i = (i + 1) & mask) {
            long s = slots[i];
            if (s == v) {
                return true;
            }
            if (s == EMPTY) {
                return false;
            }
        }
    }

    boolean add(long v) {
        if (v == EMPTY) {
            boolean added = !hasZero;
            hasZero = true;
            return added;
        }
        if ((size + 1) * 4 > slots.length * 3) {
            grow();
        }
        int mask = slots.length - 1;
        for (int i = mix(v) & mask; ; i = (i + 1) & mask) {
            long s = slots[i];
            if (s == v) {
                return false;
            }
            if (s == EMPTY) {
                slots[i] = v;
                size++;
                return true;
            }
        }
    }

    void remove(long v) {
        if (v == EMPTY) {
            hasZero = false;
            return;
        }
        int mask = slots.length - 1;
        int i = mix(v) & mask;
        while (slots[i] != v) {
            if (slots[i] == EMPTY) {
                return;
            }
            i = (i + 1) & mask;
        }
        // backward shift: move later entries of the probe run into the hole
        int hole = i;
        for (int j = (i + 1) & mask; slots[j] != EMPTY; j = (j + 1) & mask) {
            int home = mix(slots[j]) & mask;
            boolean between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!between) {
                slots[hole] = slots[j];
                hole = j;
            }
        }
        slots[hole] = EMPTY;
        size--;
    }

    private void grow() {
        long[] old = slots;
        slots = new long[old.length * 2];
        size = 0;
        for (long v : old) {
            if (v != EMPTY) {
                add(v);
            }
        }
    }


    private static int mix(long v) {
        long h = v * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32));
    }
}
