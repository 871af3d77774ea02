package recsys.flink;

import java.nio.charset.StandardCharsets;

/**
 * Encodes one stream row as the feature writer's Kafka record: a CSV line (the row, for the
 * offline store and the writer's bookkeeping), a newline, then the Redis command that writes
 * the row into Feast's online store: {@code HSET <key> _ts:<view> <Timestamp> … <field>
 * <Value> …}, byte for byte what Feast's {@code RedisOnlineStore.online_write_batch} writes.
 *
 * <p>Two strings from {@code stream_jobs/job_spec.py} describe a stream: the layout
 * ({@code keyhead|project|ts fields|field:type,...}, hex, from {@code feast_layout.py}) and,
 * per column, where its value comes from ({@code count:w:t}, {@code ratio:w:num:den},
 * {@code last_event_ms}, {@code recent_items}, {@code affinity_categories},
 * {@code affinity_shares}, {@code popularity}, {@code category_share}, {@code pair_items:k},
 * {@code pair_counts:k}). A row: stream, entity id, event time ms, produce time ms, n, then
 * the values. Values are {@code feast.types.Value} protobufs: int64_val (4), double_val (5),
 * string_list_val (12), int64_list_val (14, packed), double_list_val (15, packed); in the CSV
 * a list is its elements ';'-joined. Encoded straight from the aggregates' state, only when a
 * row is emitted: no intermediate row objects, no boxing.
 */
final class RowEncoder {
    private static final int COUNT = 0, RATIO = 1, LAST_EVENT_MS = 2, RECENT_ITEMS = 3,
            AFFINITY_CATEGORIES = 4, AFFINITY_SHARES = 5, POPULARITY = 6, CATEGORY_SHARE = 7,
            PAIR_ITEMS = 8, PAIR_COUNTS = 9;
    private static final String[] NAMES = {"count", "ratio", "last_event_ms", "recent_items",
        "affinity_categories", "affinity_shares", "popularity", "category_share", "pair_items",
        "pair_counts"};
    /** The Feast value type each source gives. */
    private static final String[] TYPES = {"i", "d", "i", "sl", "sl", "dl", "d", "d", "sl", "il"};
    private static final byte[] CRLF = {'\r', '\n'};

    private final byte[] stream;
    private final byte[] keyHead;
    private final byte[] project;
    private final byte[][] tsFields;
    private final byte[][] fields;
    private final int[] op;
    private final int[][] args;
    private final byte[] commandHead;
    final boolean needsAffinity;

    private final Bytes csv = new Bytes();
    private final Bytes resp = new Bytes();
    private final Bytes value = new Bytes();
    private final Bytes cell = new Bytes();
    private final Bytes list = new Bytes();

    // the row being encoded
    private ActivityAcc activity;
    private ActivityAcc.Affinity affinity;
    private PairState pairs;
    private double share;

    RowEncoder(String streamName, String spec, String values, int windows, int types, int kinds) {
        stream = streamName.getBytes(StandardCharsets.UTF_8);
        String[] parts = spec.split("\\|", -1);
        keyHead = hex(parts[0]);
        project = hex(parts[1]);
        String[] ts = parts[2].split(",");
        tsFields = new byte[ts.length][];
        for (int i = 0; i < ts.length; i++) {
            tsFields[i] = hex(ts[i]);
        }
        String[] fs = parts[3].split(",");
        String[] codes = values.split(",");
        if (codes.length != fs.length) {
            throw new IllegalArgumentException("recsys: stream " + streamName + " has "
                    + fs.length + " fields but " + codes.length + " value sources");
        }
        fields = new byte[fs.length][];
        op = new int[fs.length];
        args = new int[fs.length][];
        boolean affinityUsed = false;
        for (int i = 0; i < fs.length; i++) {
            String[] f = fs[i].split(":");
            fields[i] = hex(f[0]);
            String[] code = codes[i].split(":");
            op[i] = java.util.Arrays.asList(NAMES).indexOf(code[0]);
            if (op[i] < 0 || !TYPES[op[i]].equals(f[1])) {
                throw new IllegalArgumentException("recsys: stream " + streamName + " column "
                        + i + ": value source " + codes[i] + " cannot fill a " + f[1]);
            }
            args[i] = new int[code.length - 1];
            for (int a = 1; a < code.length; a++) {
                args[i][a - 1] = Integer.parseInt(code[a]);
            }
            checkArgs(streamName, codes[i], op[i], args[i], windows, types, kinds);
            affinityUsed |= op[i] == AFFINITY_CATEGORIES || op[i] == AFFINITY_SHARES;
        }
        needsAffinity = affinityUsed;
        Bytes head = new Bytes();
        head.write('*');
        head.writeDecimal(2 + 2 * (tsFields.length + fields.length));
        head.writeUtf8("\r\n$4\r\nHSET\r\n");
        commandHead = head.toArray();
    }

    private static void checkArgs(String stream, String code, int op, int[] a, int windows,
                                  int types, int kinds) {
        boolean ok;
        switch (op) {
            case COUNT: ok = a.length == 2 && a[0] < windows && a[1] < types; break;
            case RATIO: ok = a.length == 3 && a[0] < windows && a[1] < types && a[2] < types;
                break;
            case PAIR_ITEMS:
            case PAIR_COUNTS: ok = a.length == 1 && a[0] < kinds; break;
            default: ok = a.length == 0;
        }
        if (!ok) {
            throw new IllegalArgumentException("recsys: stream " + stream + ": bad value source "
                    + code);
        }
    }

    /** A user or item row (activity, recent items, affinity, popularity). */
    byte[] encode(String entity, ActivityAcc acc, ActivityAcc.Affinity aff) {
        activity = acc;
        affinity = aff;
        try {
            return encode(entity, acc.newest, acc.produced, acc.accepted);
        } finally {
            activity = null;
            affinity = null;
        }
    }

    /** An item_pairs row. */
    byte[] encode(String entity, PairState state) {
        pairs = state;
        try {
            return encode(entity, state.at, state.produced, state.n);
        } finally {
            pairs = null;
        }
    }

    /** An item_category row. */
    byte[] encode(String entity, long eventTimeMs, long producedMs, long n, double categoryShare) {
        share = categoryShare;
        return encode(entity, eventTimeMs, producedMs, n);
    }

    private byte[] encode(String entity, long eventTimeMs, long producedMs, long n) {
        csv.reset();
        resp.reset();
        csv.write(stream);
        csv.write(',');
        csvText(entity);
        csv.write(',');
        csv.writeDecimal(eventTimeMs);
        csv.write(',');
        csv.writeDecimal(producedMs);
        csv.write(',');
        csv.writeDecimal(n);

        value.reset();
        value.write(keyHead);
        byte[] id = entity.getBytes(StandardCharsets.UTF_8);
        value.writeIntLE(id.length);
        value.write(id);
        value.write(project);
        bulk(value);
        value.reset();
        timestamp(value, eventTimeMs);
        for (byte[] field : tsFields) {
            bulk(field);
            bulk(value);
        }
        for (int i = 0; i < fields.length; i++) {
            csv.write(',');
            value.reset();
            column(op[i], args[i]);
            bulk(fields[i]);
            bulk(value);
        }
        byte[] out = new byte[csv.length + 1 + commandHead.length + resp.length];
        System.arraycopy(csv.data, 0, out, 0, csv.length);
        out[csv.length] = '\n';
        System.arraycopy(commandHead, 0, out, csv.length + 1, commandHead.length);
        System.arraycopy(resp.data, 0, out, csv.length + 1 + commandHead.length, resp.length);
        return out;
    }

    /** Appends the column's CSV cell and leaves its protobuf Value in {@code value}. */
    private void column(int kind, int[] a) {
        switch (kind) {
            case COUNT:
                int64(activity.counts[a[0]][a[1]]);
                break;
            case RATIO: {
                long num = activity.counts[a[0]][a[1]];
                long den = activity.counts[a[0]][a[2]];
                float64(den > 0 ? (double) num / den : 0.0);
                break;
            }
            case LAST_EVENT_MS:
                int64(activity.newest);
                break;
            case POPULARITY:
                float64(activity.popularity);
                break;
            case CATEGORY_SHARE:
                float64(share);
                break;
            case RECENT_ITEMS:
                stringList(activity.recentItems, activity.recentSize);
                break;
            case AFFINITY_CATEGORIES:
                stringList(affinity.categories, affinity.categories.length);
                break;
            case AFFINITY_SHARES:
                doubleList(affinity.shares);
                break;
            case PAIR_ITEMS: {
                java.util.ArrayList<String> top = pairs.top[a[0]];
                stringList(top.toArray(ActivityAcc.NONE), top.size());
                break;
            }
            case PAIR_COUNTS: {
                java.util.ArrayList<String> top = pairs.top[a[0]];
                long[] counts = new long[top.size()];
                for (int i = 0; i < counts.length; i++) {
                    counts[i] = pairs.count(a[0], top.get(i));
                }
                longList(counts);
                break;
            }
            default:
                throw new IllegalStateException("value source " + kind);
        }
    }

    // --- values: CSV cell + protobuf ---------------------------------------------------------

    private void int64(long v) {
        csv.writeDecimal(v);
        value.write(0x20);
        value.writeVarint(v);
    }

    private void float64(double v) {
        csv.writeUtf8(Double.toString(v));
        value.write(0x29);
        value.writeLongLE(Double.doubleToRawLongBits(v));
    }

    private void stringList(String[] items, int n) {
        cell.reset();
        list.reset();
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                cell.write(';');
            }
            int before = cell.length;
            cell.writeUtf8(items[i]);
            list.write(0x0A);
            list.writeVarint(cell.length - before);
            list.write(cell.data, before, cell.length - before);
        }
        csvCell(cell);
        value.write(0x62);
        value.writeVarint(list.length);
        value.write(list);
    }

    private void longList(long[] values) {
        list.reset();
        for (int i = 0; i < values.length; i++) {
            if (i > 0) {
                csv.write(';');
            }
            csv.writeDecimal(values[i]);
            list.writeVarint(values[i]);
        }
        packed(0x72);
    }

    private void doubleList(double[] values) {
        list.reset();
        for (int i = 0; i < values.length; i++) {
            if (i > 0) {
                csv.write(';');
            }
            csv.writeUtf8(Double.toString(values[i]));
            list.writeLongLE(Double.doubleToRawLongBits(values[i]));
        }
        packed(0x7A);
    }

    /** A list message whose field 1 is {@code list}, packed (empty: no field at all). */
    private void packed(int tag) {
        value.write(tag);
        if (list.length == 0) {
            value.write(0);
            return;
        }
        int inner = 1 + varintSize(list.length) + list.length;
        value.writeVarint(inner);
        value.write(0x0A);
        value.writeVarint(list.length);
        value.write(list);
    }

    private static int varintSize(long v) {
        int n = 1;
        while ((v & ~0x7FL) != 0) {
            v >>>= 7;
            n++;
        }
        return n;
    }

    /** google.protobuf.Timestamp: seconds (1) and nanos (2), zeros left out. */
    private static void timestamp(Bytes out, long epochMs) {
        long seconds = Math.floorDiv(epochMs, 1000L);
        long nanos = Math.floorMod(epochMs, 1000L) * 1_000_000L;
        if (seconds != 0) {
            out.write(0x08);
            out.writeVarint(seconds);
        }
        if (nanos != 0) {
            out.write(0x10);
            out.writeVarint(nanos);
        }
    }

    // --- CSV and RESP --------------------------------------------------------------------------

    private void csvText(String s) {
        cell.reset();
        cell.writeUtf8(s);
        csvCell(cell);
    }

    /** A CSV cell, quoted when it holds a separator, a quote or a line break. */
    private void csvCell(Bytes text) {
        boolean quote = false;
        for (int i = 0; i < text.length && !quote; i++) {
            byte c = text.data[i];
            quote = c == ',' || c == '"' || c == '\n' || c == '\r';
        }
        if (!quote) {
            csv.write(text);
            return;
        }
        csv.write('"');
        for (int i = 0; i < text.length; i++) {
            if (text.data[i] == '"') {
                csv.write('"');
            }
            csv.write(text.data[i]);
        }
        csv.write('"');
    }

    private void bulk(byte[] data) {
        resp.write('$');
        resp.writeDecimal(data.length);
        resp.write(CRLF);
        resp.write(data);
        resp.write(CRLF);
    }

    private void bulk(Bytes data) {
        resp.write('$');
        resp.writeDecimal(data.length);
        resp.write(CRLF);
        resp.write(data);
        resp.write(CRLF);
    }

    private static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }
}
