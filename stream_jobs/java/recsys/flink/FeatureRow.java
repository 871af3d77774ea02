package recsys.flink;

import java.io.IOException;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/** One record for the features topic: the entity id (Kafka key) and the encoded row
 * ({@link RowEncoder}: CSV line + Feast-layout HSET). */
final class FeatureRow {
    static final TypeInformation<FeatureRow> TYPE =
            new RecordTypeInfo<>(FeatureRow.class, new Serializer());

    final byte[] key;
    final byte[] value;

    FeatureRow(byte[] key, byte[] value) {
        this.key = key;
        this.value = value;
    }

    /** Serializer of {@link FeatureRow}. */
    public static final class Serializer extends RecordSerializer<FeatureRow> {
        private static final long serialVersionUID = 1L;

        @Override
        public FeatureRow createInstance() {
            return new FeatureRow(new byte[0], new byte[0]);
        }

        @Override
        public FeatureRow copy(FeatureRow from) {
            return from; // immutable once built
        }

        @Override
        public void serialize(FeatureRow r, DataOutputView out) throws IOException {
            out.writeInt(r.key.length);
            out.write(r.key);
            out.writeInt(r.value.length);
            out.write(r.value);
        }

        @Override
        public FeatureRow deserialize(DataInputView in) throws IOException {
            byte[] key = new byte[in.readInt()];
            in.readFully(key);
            byte[] value = new byte[in.readInt()];
            in.readFully(value);
            return new FeatureRow(key, value);
        }

        @Override
        public TypeSerializerSnapshot<FeatureRow> snapshotConfiguration() {
            return new Snapshot();
        }
    }

    /** Snapshot of {@link Serializer} (no configuration). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<FeatureRow> {
        public Snapshot() {
            super(Serializer::new);
        }
    }
}
