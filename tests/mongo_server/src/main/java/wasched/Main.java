package wasched;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * mongo-java-server's in-memory backend on 127.0.0.1 and the port given: prints "ready
 * 127.0.0.1:PORT" once it accepts connections, and stops on SIGTERM or SIGINT.
 *
 * <p>It reports MongoDB 4.4 (wire version 9), the oldest PyMongo 4.20 connects to: its own
 * versions (3.6, 4.0) are refused. The commands the store sends are the same on 4.0 and 4.4.
 */
public final class Main {
    private Main() {}

    /** MongoDB 4.4, the oldest version PyMongo 4.20 accepts. */
    private static final MongoVersion MONGO_4_4 =
            new MongoVersion() {
                @Override
                public List<Integer> getVersionArray() {
                    return List.of(4, 4, 0);
                }

                @Override
                public int getWireVersion() {
                    return 9;
                }
            };

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 1) {
            System.err.println("usage: Main PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_4_4));
        server.bind("127.0.0.1", port);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    server.shutdownNow();
                                    stopped.countDown();
                                }));
        System.out.println("ready 127.0.0.1:" + port);
        System.out.flush();
        stopped.await();
    }
}
