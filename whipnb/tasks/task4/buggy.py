import torch
import torch.nn as nn
import torch.nn.functional as F

from whipnb.tasks.task4.data import NUM_FEATURES, NUM_LABELS, make_data

torch.manual_seed(0)
# Y_* are float multi-hot tags: a sample can carry several of the 8 tags, or none.
X_train, Y_train, X_val, Y_val = make_data()

model = nn.Linear(NUM_FEATURES, NUM_LABELS)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)


def predict(model, X):
    """The predicted tags of each sample, as a 0/1 tensor shaped like the targets."""
    with torch.no_grad():
        scores = model(X)
    return F.one_hot(scores.argmax(dim=1), NUM_LABELS).float()


def f1_score(pred, target):
    """Micro-F1: every (sample, tag) decision counts once."""
    true_positives = (pred * target).sum()
    return (2 * true_positives / (pred.sum() + target.sum())).item()


losses = []
for epoch in range(20):
    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 64):
        batch = order[start:start + 64]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), Y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))

val_pred = predict(model, X_val)
val_f1 = f1_score(val_pred, Y_val)

print(f"LOSSES:{[round(value, 4) for value in losses]}")
print(f"VAL_F1:{val_f1:.4f}")
print(f"TAGS_PER_SAMPLE: predicted {val_pred.sum(dim=1).mean():.2f}, true {Y_val.sum(dim=1).mean():.2f}")
