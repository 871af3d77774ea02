package recsys.flink;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Serializers of the keyed state (checkpoints, restore, copy-on-write during snapshots).
 * Only what cannot be derived is written: an activity's id set and per-category counts are
 * rebuilt from its live events.
 */
final class StateSerializers {
    private StateSerializers() {}

    /** {@link ActivityAcc}: the live events, window starts and counts, the rest. */
    public static final class Activity extends RecordSerializer<ActivityAcc> {
        private static final long serialVersionUID = 1L;

        @Override
        public ActivityAcc createInstance() {
            return new ActivityAcc(1, 1, 0);
        }

        @Override
        public ActivityAcc copy(ActivityAcc from) {
            return from.copy();
        }

        @Override
        public void serialize(ActivityAcc a, DataOutputView out) throws IOException {
            int windows = a.start.length;
            int types = a.counts[0].length;
            out.writeInt(windows);
            out.writeInt(types);
            out.writeInt(a.recentTs.length);
            int live = a.size - a.head;
            out.writeInt(live);
            for (int i = a.head; i < a.size; i++) {
                out.writeLong(a.ts[i]);
                out.writeLong(a.ids[i]);
                out.writeByte(a.types[i]);
                writeString(a.items[i], out);
                writeString(a.categories[i], out);
            }
            for (int k = 0; k < windows; k++) {
                out.writeInt(a.start[k] - a.head);
                for (int t = 0; t < types; t++) {
                    out.writeLong(a.counts[k][t]);
                }
            }
            out.writeLong(a.newest);
            out.writeLong(a.produced);
            out.writeLong(a.accepted);
            out.writeLong(a.duplicates);
            out.writeDouble(a.popularity);
            writeString(a.category, out);
            out.writeLong(a.categoryTs);
            out.writeInt(a.recentSize);
            for (int i = 0; i < a.recentSize; i++) {
                out.writeLong(a.recentTs[i]);
                writeString(a.recentItems[i], out);
            }
        }

        @Override
        public ActivityAcc deserialize(DataInputView in) throws IOException {
            int windows = in.readInt();
            int types = in.readInt();
            int recent = in.readInt();
            ActivityAcc a = new ActivityAcc(windows, types, recent);
            int live = in.readInt();
            int capacity = Math.max(8, Integer.highestOneBit(Math.max(1, live)) * 2);
            a.ts = new long[capacity];
            a.ids = new long[capacity];
            a.types = new byte[capacity];
            a.items = new String[capacity];
            a.categories = new String[capacity];
            for (int i = 0; i < live; i++) {
                a.ts[i] = in.readLong();
                a.ids[i] = in.readLong();
                a.types[i] = in.readByte();
                a.items[i] = readString(in);
                a.categories[i] = readString(in);
            }
            a.head = 0;
            a.size = live;
            for (int k = 0; k < windows; k++) {
                a.start[k] = in.readInt();
                for (int t = 0; t < types; t++) {
                    a.counts[k][t] = in.readLong();
                }
            }
            a.newest = in.readLong();
            a.produced = in.readLong();
            a.accepted = in.readLong();
            a.duplicates = in.readLong();
            a.popularity = in.readDouble();
            a.category = readString(in);
            a.categoryTs = in.readLong();
            a.recentSize = in.readInt();
            for (int i = 0; i < a.recentSize; i++) {
                a.recentTs[i] = in.readLong();
                a.recentItems[i] = readString(in);
            }
            a.rebuildIndexes();
            return a;
        }

        @Override
        public TypeSerializerSnapshot<ActivityAcc> snapshotConfiguration() {
            return new ActivitySnapshot();
        }
    }

    /** Snapshot of {@link Activity}. */
    public static final class ActivitySnapshot extends SimpleTypeSerializerSnapshot<ActivityAcc> {
        public ActivitySnapshot() {
            super(Activity::new);
        }
    }

    /** {@link PairState}: per kind the partner counts and the top list. */
    public static final class Pairs extends RecordSerializer<PairState> {
        private static final long serialVersionUID = 1L;

        @Override
        public PairState createInstance() {
            return new PairState(0);
        }

        @Override
        public PairState copy(PairState from) {
            return from.copy();
        }

        @Override
        public void serialize(PairState s, DataOutputView out) throws IOException {
            out.writeInt(s.partners.length);
            for (int k = 0; k < s.partners.length; k++) {
                out.writeInt(s.partners[k].size());
                for (Map.Entry<String, long[]> e : s.partners[k].entrySet()) {
                    writeString(e.getKey(), out);
                    out.writeLong(e.getValue()[0]);
                }
                out.writeInt(s.top[k].size());
                for (String partner : s.top[k]) {
                    writeString(partner, out);
                }
            }
            out.writeLong(s.n);
            out.writeLong(s.at);
            out.writeLong(s.produced);
        }

        @Override
        public PairState deserialize(DataInputView in) throws IOException {
            PairState s = new PairState(in.readInt());
            for (int k = 0; k < s.partners.length; k++) {
                int n = in.readInt();
                HashMap<String, long[]> counts = new HashMap<>(Math.max(4, n * 2));
                for (int i = 0; i < n; i++) {
                    counts.put(readString(in), new long[] {in.readLong()});
                }
                s.partners[k].putAll(counts);
                int top = in.readInt();
                for (int i = 0; i < top; i++) {
                    s.top[k].add(readString(in));
                }
            }
            s.n = in.readLong();
            s.at = in.readLong();
            s.produced = in.readLong();
            return s;
        }

        @Override
        public TypeSerializerSnapshot<PairState> snapshotConfiguration() {
            return new PairsSnapshot();
        }
    }

    /** Snapshot of {@link Pairs}. */
    public static final class PairsSnapshot extends SimpleTypeSerializerSnapshot<PairState> {
        public PairsSnapshot() {
            super(Pairs::new);
        }
    }

    /** {@link CategoryState}: every item's (score, time) and the total. */
    public static final class Category extends RecordSerializer<CategoryState> {
        private static final long serialVersionUID = 1L;

        @Override
        public CategoryState createInstance() {
            return new CategoryState();
        }

        @Override
        public CategoryState copy(CategoryState from) {
            return from.copy();
        }

        @Override
        public void serialize(CategoryState s, DataOutputView out) throws IOException {
            out.writeInt(s.items.size());
            for (Map.Entry<String, double[]> e : s.items.entrySet()) {
                writeString(e.getKey(), out);
                out.writeDouble(e.getValue()[0]);
                out.writeDouble(e.getValue()[1]);
            }
            out.writeDouble(s.total);
            out.writeLong(s.at);
        }

        @Override
        public CategoryState deserialize(DataInputView in) throws IOException {
            CategoryState s = new CategoryState();
            int n = in.readInt();
            for (int i = 0; i < n; i++) {
                s.items.put(readString(in), new double[] {in.readDouble(), in.readDouble()});
            }
            s.total = in.readDouble();
            s.at = in.readLong();
            return s;
        }

        @Override
        public TypeSerializerSnapshot<CategoryState> snapshotConfiguration() {
            return new CategorySnapshot();
        }
    }

    /** Snapshot of {@link Category}. */
    public static final class CategorySnapshot extends SimpleTypeSerializerSnapshot<CategoryState> {
        public CategorySnapshot() {
            super(Category::new);
        }
    }
}
