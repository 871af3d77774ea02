package recsys.flink;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The feature job's topology, built into the PyFlink entry point's environment
 * ({@code stream_jobs/features_job.py} calls {@link #build} through the py4j gateway):
 *
 * <pre>
 * clickstream ─▶ source (parse) ─▶ checks ──▶ dead letters
 *                                    │ valid events (+ category)
 *                                    ▼ keyBy user
 *                              user aggregate ──▶ user rows
 *                                    │ each event + its partners; one pair per partner
 *                                    ▼ keyBy item
 *                              item aggregate ──▶ item rows, item_pairs rows
 *                                    │ the item's popularity after each event
 *                                    ▼ keyBy category
 *                            category aggregate ──▶ item_category rows
 * </pre>
 *
 * Rows go to the features topic keyed by entity id, each changed entity once per emit
 * interval; dead letters to their topic. Operator ids are fixed, so a restored job maps its
 * checkpointed state back whatever else changed in the graph.
 */
public final class FeatureJob {
    private FeatureJob() {}

    /**
     * Adds the job to {@code env}. Its parameters are the environment's global job parameters
     * (see {@link JobSettings}); the Kafka client properties come apart (they may hold
     * secrets, which the job parameters would show in the web UI).
     */
    public static void build(StreamExecutionEnvironment env, Map<String, String> clientProperties) {
        JobSettings s = new JobSettings(env.getConfig().getGlobalJobParameters().toMap(),
                clientProperties);

        KafkaSource<ClickRecord> source = KafkaSource.<ClickRecord>builder()
                .setBootstrapServers(s.bootstrapServers)
                .setTopics(s.clickstreamTopic)
                .setGroupId(s.groupId)
                // a restored job takes its offsets from the checkpoint; a fresh one reads the
                // retained history (the windows need it)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new ClickRecord.Deserializer(s))
                .setProperties(s.kafkaProperties())
                .setProperty("fetch.min.bytes", String.valueOf(s.fetchMinBytes))
                .setProperty("fetch.max.wait.ms", String.valueOf(s.fetchMaxWaitMs))
                .build();
        WatermarkStrategy<ClickRecord> watermarks = new BoundedDelay(s.watermarkDelayMs)
                .withTimestampAssigner((record, previous) -> record.eventTimeMs);
        if (s.idleTimeoutMs > 0) {
            watermarks = watermarks.withIdleness(Duration.ofMillis(s.idleTimeoutMs));
        }

        SingleOutputStreamOperator<Event> events = env
                .fromSource(source, watermarks, "clickstream").uid("clickstream-source")
                .process(new EventChecks(s), Event.TYPE).name("checks").uid("checks");
        events.getSideOutput(EventChecks.DEAD_LETTERS)
                .sinkTo(sink(s, s.deadLetterTopic, new DeadLetterRecords(s.deadLetterTopic),
                        new Properties()))
                .name("dead letters").uid("dead-letters-sink");

        SingleOutputStreamOperator<ItemUpdate> users = events
                .keyBy(new UserKey(), Types.STRING)
                .transform("user aggregate", ItemUpdate.TYPE, new UserAggregate(s))
                .uid("user-aggregate");
        rowsSink(s, users, UserAggregate.ROWS, "user");

        SingleOutputStreamOperator<CategoryUpdate> items = users
                .keyBy(new ItemKey(), Types.STRING)
                .transform("item aggregate", CategoryUpdate.TYPE, new ItemAggregate(s))
                .uid("item-aggregate");
        rowsSink(s, items, ItemAggregate.ROWS, "item");

        SingleOutputStreamOperator<Void> categories = items
                .keyBy(new CategoryKey(), Types.STRING)
                .transform("category aggregate", Types.VOID, new CategoryAggregate(s))
                .uid("category-aggregate");
        rowsSink(s, categories, CategoryAggregate.ROWS, "category");
    }

    private static void rowsSink(JobSettings s, SingleOutputStreamOperator<?> from,
                                 org.apache.flink.util.OutputTag<FeatureRow> tag, String name) {
        Properties batching = new Properties();
        batching.putAll(s.sinkProperties);
        from.getSideOutput(tag)
                .sinkTo(sink(s, s.featuresTopic, new FeatureRecords(s.featuresTopic), batching))
                .name(name + " rows").uid(name + "-rows-sink");
    }

    private static <T> KafkaSink<T> sink(JobSettings s, String topic,
                                         KafkaRecordSerializationSchema<T> records,
                                         Properties extra) {
        Properties props = s.kafkaProperties();
        props.putAll(extra);
        return KafkaSink.<T>builder()
                .setBootstrapServers(s.bootstrapServers)
                .setKafkaProducerConfig(props)
                .setRecordSerializer(records)
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .build();
    }

    /**
     * Bounded out-of-orderness: the watermark trails the newest event time seen by the
     * delay (an event at or before it is late), emitted periodically; nothing before the
     * first event.
     */
    static final class BoundedDelay implements WatermarkStrategy<ClickRecord> {
        private static final long serialVersionUID = 1L;
        private final long delayMs;

        BoundedDelay(long delayMs) {
            this.delayMs = delayMs;
        }

        @Override
        public WatermarkGenerator<ClickRecord> createWatermarkGenerator(
                org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier.Context ctx) {
            return new WatermarkGenerator<>() {
                private long current = Long.MIN_VALUE;

                @Override
                public void onEvent(ClickRecord record, long ts, WatermarkOutput output) {
                    current = Math.max(current, ts - delayMs);
                }

                @Override
                public void onPeriodicEmit(WatermarkOutput output) {
                    if (current != Long.MIN_VALUE) {
                        output.emitWatermark(new Watermark(current));
                    }
                }
            };
        }
    }

    static final class UserKey implements KeySelector<Event, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(Event e) {
            return e.userId;
        }
    }

    static final class ItemKey implements KeySelector<ItemUpdate, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(ItemUpdate u) {
            return u.item;
        }
    }

    static final class CategoryKey implements KeySelector<CategoryUpdate, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(CategoryUpdate u) {
            return u.category;
        }
    }

    /** A feature row as a Kafka record keyed by entity id (the writer keeps the newest). */
    static final class FeatureRecords implements KafkaRecordSerializationSchema<FeatureRow> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        FeatureRecords(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(FeatureRow row, KafkaSinkContext context,
                                                        Long timestamp) {
            return new ProducerRecord<>(topic, null, null, row.key, row.value);
        }
    }

    /** A dead letter (JSON) as an unkeyed Kafka record. */
    static final class DeadLetterRecords implements KafkaRecordSerializationSchema<byte[]> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        DeadLetterRecords(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(byte[] letter, KafkaSinkContext context,
                                                        Long timestamp) {
            return new ProducerRecord<>(topic, null, null, null, letter);
        }
    }
}
