package recsys.flink;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * One entity's events inside its longest window, sorted by event time, with running counts
 * per window and event type. Every window ends at the entity's newest event: a window of
 * length w holds the events with {@code newest - w <= ts <= newest}, the same frame as a SQL
 * {@code RANGE BETWEEN w PRECEDING AND CURRENT ROW} at the newest event.
 *
 * <p>The result depends only on the set of events, not on their arrival order, so an event
 * that arrives late (but within the watermark's allowed lateness) is counted exactly, and
 * a replayed event id is recognised and ignored (producer retries).
 *
 * <p>Also kept: a decayed popularity (weights halved every half-life before the newest
 * event), the last N items, per category the event counts inside the longest window, the
 * newest event's category and, for the event just added, the items it pairs with: the
 * entity's other events of the same pair kind (views with views, purchases with purchases)
 * within that kind's window either side, nearest in time first, distinct, at most P. Each
 * pair of events is found once, when the second of the two arrives.
 */
public final class ActivityAcc {
    // live events, sorted by ts: indices [head, size)
    long[] ts = new long[8];
    long[] ids = new long[8];
    byte[] types = new byte[8];
    String[] items = new String[8];
    String[] categories = new String[8];
    int head;
    int size;
    /** Per window, the first live index inside it (the longest window starts at head). */
    int[] start;
    /** Per window, counts per event type. */
    long[][] counts;
    /** The id hashes of the live events (rebuilt from {@code ids} on restore). */
    LongSet liveIds = new LongSet();
    /** Category -> counts per event type inside the longest window (rebuilt on restore). */
    HashMap<String, long[]> categoryCounts = new HashMap<>();

    long newest = Long.MIN_VALUE;
    long produced = Long.MIN_VALUE;
    long accepted;
    long duplicates;
    double popularity;
    String category;
    long categoryTs = Long.MIN_VALUE;
    /** The pair kind of the event just added (-1: none) and the items it pairs with: results
     * of the last {@link #add}, not state. */
    int pairKind = -1;
    String[] partners = NONE;

    long[] recentTs = new long[0];
    String[] recentItems = new String[0];
    int recentSize;

    static final String[] NONE = new String[0];

    /** Which event types pair up (index = type, value = pair kind or -1) and how. */
    static final class Pairing implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        final int[] kindOfType;
        final long[] windows;
        final int max;

        Pairing(int[] kindOfType, long[] windows, int max) {
            this.kindOfType = kindOfType;
            this.windows = windows;
            this.max = max;
        }

        int kind(int type) {
            return type < kindOfType.length ? kindOfType[type] : -1;
        }
    }

    ActivityAcc(int windows, int types, int recent) {
        start = new int[windows];
        counts = new long[windows][types];
        recentTs = new long[recent];
        recentItems = new String[recent];
    }

    /** Adds one event; returns false when its id is already counted (a duplicate). */
    boolean add(long id, int type, long eventTs, long producedMs, String item, String category,
                long[] windows, double[] weights, double halfLifeMs, Pairing pairing) {
        pairKind = -1;
        partners = NONE;
        if (liveIds.contains(id)) {
            duplicates++;
            return false;
        }
        accepted++;
        if (category != null && eventTs >= categoryTs) {
            this.category = category;
            categoryTs = eventTs;
        }
        produced = Math.max(produced, producedMs);
        decay(eventTs, weights[type], halfLifeMs);
        if (recentTs.length > 0 && item != null) {
            remember(eventTs, item);
        }
        long longest = windows[windows.length - 1];
        if (newest != Long.MIN_VALUE && eventTs < newest - longest) {
            return true; // older than every window: counted in popularity only
        }
        int p = insert(eventTs, id, type, item, category);
        liveIds.add(id);
        if (pairing != null && item != null) {
            pairKind = pairing.kind(type);
            if (pairKind >= 0) {
                partners = partnersOf(p, pairing.windows[pairKind], pairing.max);
            }
        }
        for (int k = 0; k < windows.length; k++) {
            if (newest == Long.MIN_VALUE || eventTs >= newest - windows[k]) {
                counts[k][type]++;
            } else if (p <= start[k]) {
                start[k]++;
            }
        }
        if (category != null) {
            categoryCounts.computeIfAbsent(category, c -> new long[counts[0].length])[type]++;
        }
        if (eventTs > newest) {
            newest = eventTs;
            evict(windows);
        }
        return true;
    }

    private void decay(long eventTs, double weight, double halfLifeMs) {
        if (newest == Long.MIN_VALUE) {
            popularity = weight;
        } else if (halfLifeMs <= 0) {
            popularity += weight;
        } else if (eventTs >= newest) {
            popularity = popularity * Math.pow(0.5, (eventTs - newest) / halfLifeMs) + weight;
        } else {
            popularity += weight * Math.pow(0.5, (newest - eventTs) / halfLifeMs);
        }
    }

    private void remember(long eventTs, String item) {
        int n = recentTs.length;
        if (recentSize == n && eventTs < recentTs[0]) {
            return;
        }
        int p = recentSize;
        while (p > 0 && recentTs[p - 1] > eventTs) {
            p--;
        }
        if (recentSize == n) { // drop the oldest
            System.arraycopy(recentTs, 1, recentTs, 0, p - 1);
            System.arraycopy(recentItems, 1, recentItems, 0, p - 1);
            p--;
        } else {
            System.arraycopy(recentTs, p, recentTs, p + 1, recentSize - p);
            System.arraycopy(recentItems, p, recentItems, p + 1, recentSize - p);
            recentSize++;
        }
        recentTs[p] = eventTs;
        recentItems[p] = item;
    }

    /** Distinct other items of the same type within ``window`` of entry p, nearest first. */
    private String[] partnersOf(int p, long window, int max) {
        String item = items[p];
        byte type = types[p];
        long at = ts[p];
        java.util.ArrayList<String> found = new java.util.ArrayList<>();
        int left = p - 1;
        int right = p + 1;
        while (found.size() < max) {
            boolean leftOk = left >= head && at - ts[left] <= window;
            boolean rightOk = right < size && ts[right] - at <= window;
            if (!leftOk && !rightOk) {
                break;
            }
            int i = !rightOk || (leftOk && at - ts[left] <= ts[right] - at) ? left-- : right++;
            if (types[i] == type && !item.equals(items[i]) && !found.contains(items[i])) {
                found.add(items[i]);
            }
        }
        return found.toArray(NONE);
    }

    /** Inserts after every live event with ts <= eventTs; returns its index. */
    private int insert(long eventTs, long id, int type, String item, String category) {
        if (size == ts.length) {
            makeRoom();
        }
        int p = size;
        if (p > head && ts[p - 1] > eventTs) {
            int lo = head;
            int hi = size;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (ts[mid] <= eventTs) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            p = lo;
            int tail = size - p;
            System.arraycopy(ts, p, ts, p + 1, tail);
            System.arraycopy(ids, p, ids, p + 1, tail);
            System.arraycopy(types, p, types, p + 1, tail);
            System.arraycopy(items, p, items, p + 1, tail);
            System.arraycopy(categories, p, categories, p + 1, tail);
        }
        ts[p] = eventTs;
        ids[p] = id;
        types[p] = (byte) type;
        items[p] = item;
        categories[p] = category;
        size++;
        return p;
    }

    private void makeRoom() {
        if (head > 0) {
            int live = size - head;
            System.arraycopy(ts, head, ts, 0, live);
            System.arraycopy(ids, head, ids, 0, live);
            System.arraycopy(types, head, types, 0, live);
            System.arraycopy(items, head, items, 0, live);
            System.arraycopy(categories, head, categories, 0, live);
            Arrays.fill(items, live, size, null);
            Arrays.fill(categories, live, size, null);
            for (int k = 0; k < start.length; k++) {
                start[k] -= head;
            }
            size = live;
            head = 0;
        }
        if (size * 4 > ts.length * 3) {
            int capacity = ts.length * 2;
            ts = Arrays.copyOf(ts, capacity);
            ids = Arrays.copyOf(ids, capacity);
            types = Arrays.copyOf(types, capacity);
            items = Arrays.copyOf(items, capacity);
            categories = Arrays.copyOf(categories, capacity);
        }
    }

    /** Moves each window's start past the events now older than it. */
    private void evict(long[] windows) {
        for (int k = 0; k < windows.length; k++) {
            long bound = newest - windows[k];
            int s = start[k];
            while (s < size && ts[s] < bound) {
                counts[k][types[s]]--;
                s++;
            }
            start[k] = s;
        }
        int last = windows.length - 1;
        for (int i = head; i < start[last]; i++) {
            liveIds.remove(ids[i]);
            items[i] = null;
            String category = categories[i];
            if (category != null) {
                long[] c = categoryCounts.get(category);
                c[types[i]]--;
                if (Arrays.stream(c).allMatch(v -> v == 0)) {
                    categoryCounts.remove(category);
                }
                categories[i] = null;
            }
        }
        head = start[last];
    }

    /** The top categories by weighted events in the longest window, best first (ties by
     * name), and each one's share of the total weight. */
    static final class Affinity {
        final String[] categories;
        final double[] shares;

        Affinity(String[] categories, double[] shares) {
            this.categories = categories;
            this.shares = shares;
        }
    }

    Affinity affinity(double[] weights, int top) {
        double total = 0;
        String[] names = new String[categoryCounts.size()];
        double[] score = new double[names.length];
        int n = 0;
        for (Map.Entry<String, long[]> e : categoryCounts.entrySet()) {
            double w = 0;
            for (int t = 0; t < weights.length; t++) {
                w += e.getValue()[t] * weights[t];
            }
            if (w > 0) {
                names[n] = e.getKey();
                score[n++] = w;
                total += w;
            }
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> score[a] != score[b]
                ? Double.compare(score[b], score[a]) : names[a].compareTo(names[b]));
        int k = Math.min(top, n);
        String[] categories = new String[k];
        double[] shares = new double[k];
        for (int i = 0; i < k; i++) {
            categories[i] = names[order[i]];
            shares[i] = score[order[i]] / total;
        }
        return new Affinity(categories, shares);
    }

    /** Rebuilds what is derived from the live events (after a restore). */
    void rebuildIndexes() {
        liveIds = new LongSet();
        categoryCounts = new HashMap<>();
        for (int i = head; i < size; i++) {
            liveIds.add(ids[i]);
            if (categories[i] != null) {
                categoryCounts.computeIfAbsent(categories[i], c -> new long[counts[0].length])
                        [types[i]]++;
            }
        }
    }

    /** A deep copy (state snapshots copy an entry that changes while they run). */
    ActivityAcc copy() {
        ActivityAcc c = new ActivityAcc(start.length, counts[0].length, recentTs.length);
        c.ts = ts.clone();
        c.ids = ids.clone();
        c.types = types.clone();
        c.items = items.clone();
        c.categories = categories.clone();
        c.head = head;
        c.size = size;
        c.start = start.clone();
        for (int k = 0; k < counts.length; k++) {
            c.counts[k] = counts[k].clone();
        }
        c.liveIds = new LongSet(liveIds);
        for (Map.Entry<String, long[]> e : categoryCounts.entrySet()) {
            c.categoryCounts.put(e.getKey(), e.getValue().clone());
        }
        c.newest = newest;
        c.produced = produced;
        c.accepted = accepted;
        c.duplicates = duplicates;
        c.popularity = popularity;
        c.category = category;
        c.categoryTs = categoryTs;
        c.recentTs = recentTs.clone();
        c.recentItems = recentItems.clone();
        c.recentSize = recentSize;
        return c;
    }
}
