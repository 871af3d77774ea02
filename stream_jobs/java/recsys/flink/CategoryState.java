package recsys.flink;

import java.util.HashMap;
import java.util.Map;

/**
 * An item's share of its category's recency-weighted popularity: per category, every item's
 * latest (score, time) and the total decayed to the newest time seen.
 *
 * <p>Each item row carries the item's whole decayed popularity as of its newest event
 * (absolute, de-duplicated). When one arrives the total is updated and the item's share of it
 * returned (both decayed to the same time, so the ratio does not depend on when it is read).
 * Rows of one item arrive in order, so the state is exact whatever the interleaving of items.
 */
final class CategoryState {
    final HashMap<String, double[]> items = new HashMap<>();
    double total;
    long at = Long.MIN_VALUE;

    private static double decay(long fromTs, long toTs, double halfLifeMs) {
        return halfLifeMs <= 0 || fromTs == Long.MIN_VALUE || toTs == fromTs ? 1.0
                : Math.pow(0.5, (toTs - fromTs) / halfLifeMs);
    }

    /** Sets the item's popularity {@code score} as of {@code ts}; returns its share. */
    double update(String item, double score, long ts, double halfLifeMs) {
        long now = Math.max(ts, at);
        double sum = total * decay(at, now, halfLifeMs);
        double[] old = items.get(item);
        if (old != null) {
            sum -= old[0] * decay((long) old[1], now, halfLifeMs);
        }
        double mine = score * decay(ts, now, halfLifeMs);
        sum = Math.max(sum, 0.0) + mine;
        items.put(item, new double[] {score, ts});
        total = sum;
        at = now;
        return sum > 0 ? Math.min(1.0, mine / sum) : 0.0;
    }

    CategoryState copy() {
        CategoryState c = new CategoryState();
        for (Map.Entry<String, double[]> e : items.entrySet()) {
            c.items.put(e.getKey(), e.getValue().clone());
        }
        c.total = total;
        c.at = at;
        return c;
    }
}
